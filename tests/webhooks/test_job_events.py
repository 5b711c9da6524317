"""The events a gated pipeline sends, through keel.yaml, from the runner and the runner it resumes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel import approvals
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace, resolve_workspace
from tests.approvals.conftest import gated, start, wait_until_ended
from tests.webhooks.receiver import receiver


def test_a_gated_pipeline_reports_each_change_to_a_signed_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", "from-the-environment")
    for variable in ("KEEL_WORKSPACE", "KEEL_DATABASE_URL", "KEEL_ARTIFACTS_URL"):
        monkeypatch.delenv(variable, raising=False)
    with receiver("from-the-environment") as got:
        (tmp_path / "keel.yaml").write_text(
            "webhooks:\n"
            "  endpoints:\n"
            f"    - {{name: ci, url: '{got.url}', secret: '${{TEST_HOOK_SECRET}}'}}\n"
        )
        monkeypatch.chdir(tmp_path)
        workspace = Workspace(resolve_workspace(cwd=tmp_path))
        job = start(workspace, gated(tmp_path, "    approvers: [alice]"))
        assert job.status == JobStatus.PAUSED
        got.wait_for(3)
        assert got.events() == ["job.running", "approval.requested", "job.paused"]
        requested = got.requests[1].body["data"]
        assert requested["approval"]["pipeline"] == job.name and requested["approval"]["approvers"] == [
            "alice"
        ]
        assert requested["commands"]["approve"].startswith("keel approval approve ")
        (request,) = approvals.list_approvals(workspace.store)
        approvals.approve(workspace, request.id, by="alice")  # the resumed runner is another process
        assert wait_until_ended(workspace, job.name).status == JobStatus.COMPLETED
        deadline = time.monotonic() + 30
        while len(got.events()) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        events = got.events()
    assert events[:3] == ["job.running", "approval.requested", "job.paused"]
    assert sorted(events[3:]) == ["approval.decided", "job.completed", "job.running"]
    completed = next(r for r in got.requests if r.event_type == "job.completed").body["data"]["job"]
    assert completed["name"] == job.name and completed["exit_code"] == 0
    assert all(r.signed for r in got.requests)
