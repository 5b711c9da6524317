"""`keel approval` and `keel job create --wait` on a gated pipeline, as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keel.workspace import Workspace
from tests.approvals.conftest import gated
from tests.jobs.conftest import keel_cli


def _waiting(workspace: Workspace, path: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace.config.root)]
    return subprocess.Popen(
        [*command, "job", "create", "-f", str(path), "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pending(workspace: Workspace, timeout: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = keel_cli(workspace, "approval", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        found: list[dict[str, object]] = json.loads(listed.stdout)
        if found:
            return found
        time.sleep(0.2)
    pytest.fail("no approval became pending")


def test_wait_holds_until_approved_then_exits_zero(workspace: Workspace, tmp_path: Path) -> None:
    waiting = _waiting(workspace, gated(tmp_path, "    approvers: [alice, bob]\n    min_approvals: 2"))
    (request,) = _pending(workspace)
    number = str(request["id"])
    first = keel_cli(workspace, "approval", "approve", number, "--as", "alice", "--comment", "fine")
    assert first.returncode == 0 and "1 of 2 approvals so far (alice)" in first.stdout
    time.sleep(1)
    assert waiting.poll() is None  # still waiting: one approval of two
    second = keel_cli(workspace, "approval", "approve", number, "--as", "bob")
    assert second.returncode == 0 and "approved (approved by alice, bob)" in second.stdout
    _, errors = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, errors
    assert "Paused (waiting for approval" in errors
    shown = json.loads(keel_cli(workspace, "approval", "show", number, "-o", "json").stdout)
    assert [d["decided_by"] for d in shown["decisions"]] == ["alice", "bob"]
    assert shown["decisions"][0]["comment"] == "fine" and shown["status"] == "approved"
    table = keel_cli(workspace, "approval", "show", number).stdout
    assert "Decisions" in table and "Check the model's metrics" in table


def test_wait_exits_one_on_rejection(workspace: Workspace, tmp_path: Path) -> None:
    waiting = _waiting(workspace, gated(tmp_path))
    (request,) = _pending(workspace)
    rejected = keel_cli(workspace, "approval", "reject", str(request["id"]), "--as", "bob", "-c", "too slow")
    assert rejected.returncode == 0 and "fails at this step" in rejected.stdout
    _, errors = waiting.communicate(timeout=120)
    assert waiting.returncode == 1
    assert "rejected by bob: too slow" in errors


def test_wait_exits_three_when_the_approval_times_out(workspace: Workspace, tmp_path: Path) -> None:
    """Nobody else looks: the waiting command itself notices the timeout."""
    waiting = _waiting(workspace, gated(tmp_path, "    timeout: 2s"))
    _, errors = waiting.communicate(timeout=120)
    assert waiting.returncode == 3, errors
    assert "approval timed out after 2s (on_timeout: reject)" in errors


def test_bad_decisions_exit_one_with_one_line(workspace: Workspace, tmp_path: Path) -> None:
    from tests.approvals.conftest import start

    start(workspace, gated(tmp_path))
    (request,) = _pending(workspace)
    number = str(request["id"])
    cases = [
        (("reject", number, "--as", "bob"), "error: a rejection needs a comment saying why"),
        (("approve", number, "--as", "mallory"), f"error: mallory is not an approver of approval {number}"),
        (("approve", "4242"), "error: no approval 4242 (see `keel approval list`)"),
    ]
    for arguments, message in cases:
        result = keel_cli(workspace, "approval", *arguments)
        assert result.returncode == 1, arguments
        assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result.stderr
    usage = keel_cli(workspace, "approval", "approve", "not-a-number")
    assert usage.returncode == 2
    assert json.loads(keel_cli(workspace, "approval", "list", "-o", "json").stdout)[0]["decisions"] == []


def test_job_show_settles_a_timed_out_approval(workspace: Workspace, tmp_path: Path) -> None:
    from tests.approvals.conftest import start, wait_until_ended

    job = start(workspace, gated(tmp_path, "    timeout: 1s\n    on_timeout: approve"))
    time.sleep(1.2)
    shown = keel_cli(workspace, "job", "show", job.name, "-o", "json")
    assert shown.returncode == 0
    assert wait_until_ended(workspace, job.name).status.value == "completed"
    decided = json.loads(keel_cli(workspace, "approval", "list", "--all", "-o", "json").stdout)
    assert decided[0]["status"] == "approved"
