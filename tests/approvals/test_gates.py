"""Approval steps: a pipeline parks without a process, and decisions resume or fail it.

Real pipelines with real command steps; resumes run in the detached runner a
decision starts. The core flow runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from keel import approvals
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.jobs.outcome import exit_code_for
from keel.jobs.submit import cancel
from keel.specs import SpecError, load_job
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.approvals.conftest import gated, log_of, start, steps, wait_until_ended


def test_a_pipeline_parks_then_resumes_when_enough_approvers_approve(
    on_store: Workspace, tmp_path: Path
) -> None:
    job = start(
        on_store, gated(tmp_path, "    approvers: [alice, bob]\n    min_approvals: 2\n    timeout: 1h")
    )
    assert job.status == JobStatus.PAUSED, job.status_reason
    assert job.status_reason and "keel approval approve" in job.status_reason
    assert job.heartbeat_at is None  # nothing holds it: no process, no heartbeat
    parked = steps(on_store, job)
    assert parked["train"].status == JobStatus.COMPLETED
    assert parked["review"].status == JobStatus.PAUSED and parked["deploy"].status == JobStatus.QUEUED
    (request,) = approvals.list_approvals(on_store.store)
    assert (request.pipeline, request.step_name, request.approvers) == (job.name, "review", ("alice", "bob"))
    assert request.instructions == "Check the model's metrics" and request.expires_at is not None

    first = approvals.approve(on_store, request.id, by="alice", comment="metrics look right")
    assert first.status == approvals.PENDING and first.approved_by == ["alice"]
    time.sleep(0.5)
    assert get_job(on_store.store, job.name).status == JobStatus.PAUSED  # one of two is not enough
    second = approvals.approve(on_store, request.id, by="bob")
    assert second.status == approvals.APPROVED and second.status_reason == "approved by alice, bob"

    ended = wait_until_ended(on_store, job.name)
    assert ended.status == JobStatus.COMPLETED, ended.status_reason
    assert ended.start_time == job.start_time  # the pipeline keeps the time it first started
    final = steps(on_store, ended)
    assert final["train"].id == parked["train"].id and final["train"].end_time == parked["train"].end_time
    assert final["review"].status == JobStatus.COMPLETED and final["review"].start_time is not None
    assert final["review"].status_reason == "approved by alice, bob"
    assert "model-v1" in log_of(on_store, final["deploy"]) and "threshold=0.8" in log_of(
        on_store, final["deploy"]
    )
    decisions = approvals.get_approval(on_store.store, request.id).decisions
    assert [(d.decided_by, d.decision, d.comment) for d in decisions] == [
        ("alice", "approve", "metrics look right"),
        ("bob", "approve", None),
    ]
    assert all(d.os_user == approvals.os_user() and d.decided_at >= job.start_time for d in decisions)


def test_a_rejection_fails_the_pipeline_at_the_gate(on_store: Workspace, tmp_path: Path) -> None:
    job = start(on_store, gated(tmp_path))
    (request,) = approvals.list_approvals(on_store.store)
    approvals.reject(on_store, request.id, by="bob", comment="accuracy dropped")
    ended = wait_until_ended(on_store, job.name)
    assert ended.status == JobStatus.FAILED and exit_code_for(ended) == 1
    assert ended.status_reason == "step 'review' failed: rejected by bob: accuracy dropped"
    final = steps(on_store, ended)
    assert final["deploy"].status == JobStatus.CANCELED and final["train"].status == JobStatus.COMPLETED


def test_who_may_decide_and_how_is_enforced(on_store: Workspace, tmp_path: Path) -> None:
    start(on_store, gated(tmp_path, "    approvers: [alice, bob]\n    min_approvals: 2"))
    (request,) = approvals.list_approvals(on_store.store)
    with pytest.raises(
        PermissionDenied, match=r"carol is not an approver of approval \d+ \(approvers: alice, bob\)"
    ):
        approvals.approve(on_store, request.id, by="carol")
    with pytest.raises(InvalidInput, match="a rejection needs a comment"):
        approvals.reject(on_store, request.id, by="bob", comment="   ")
    approvals.approve(on_store, request.id, by="alice")
    with pytest.raises(Conflict, match="alice has already decided"):
        approvals.approve(on_store, request.id, by="alice")
    with pytest.raises(NotFound, match="no approval 999"):
        approvals.approve(on_store, 999, by="alice")
    approvals.reject(on_store, request.id, by="bob", comment="no")
    with pytest.raises(Conflict, match="is already rejected"):
        approvals.approve(on_store, request.id, by="bob")
    assert len(approvals.get_approval(on_store.store, request.id).decisions) == 2


def test_anyone_may_decide_when_no_approvers_are_named(workspace: Workspace, tmp_path: Path) -> None:
    job = start(workspace, gated(tmp_path, "    on_timeout: reject"))
    (request,) = approvals.list_approvals(workspace.store)
    approvals.approve(workspace, request.id)  # as the OS user
    assert wait_until_ended(workspace, job.name).status == JobStatus.COMPLETED
    (decision,) = approvals.get_approval(workspace.store, request.id).decisions
    assert decision.decided_by == approvals.os_user()


@pytest.mark.parametrize(
    ("on_timeout", "status", "exit_code"),
    [("approve", JobStatus.COMPLETED, 0), ("reject", JobStatus.FAILED, 3)],
)
def test_a_timeout_is_decided_by_whoever_looks(
    workspace: Workspace, tmp_path: Path, on_timeout: str, status: JobStatus, exit_code: int
) -> None:
    job = start(workspace, gated(tmp_path, f"    timeout: 1s\n    on_timeout: {on_timeout}"))
    assert job.status == JobStatus.PAUSED
    assert approvals.settle(workspace) == []  # not yet due
    time.sleep(1.1)
    assert approvals.settle(workspace) == [job.name]  # decided and resumed
    assert approvals.settle(workspace) == []  # the resume is under way: not started twice
    ended = wait_until_ended(workspace, job.name)
    assert ended.status == status and exit_code_for(ended) == exit_code
    (request,) = approvals.list_approvals(workspace.store, status=None)
    assert request.status_reason == f"approval timed out after 1s (on_timeout: {on_timeout})"
    assert request.decisions == ()  # nobody decided; the timeout did


def test_a_decision_while_other_steps_run_is_applied_without_parking(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = gated(tmp_path, "    approvers: [alice]")
    text = path.read_text().replace("  deploy:", "  slow:\n    command: sleep 3\n  deploy:")
    path.write_text(text)
    spec = load_job(path)
    from keel.jobs.submit import run, submit

    job = submit(workspace, spec)
    runner = threading.Thread(target=run, args=(workspace, job.name))
    runner.start()
    request = _first_request(workspace)
    approved = approvals.approve(workspace, request.id, by="alice")
    runner.join()
    ended = get_job(workspace.store, job.name)
    assert ended.status == JobStatus.COMPLETED, ended.status_reason
    assert approved.status == approvals.APPROVED
    from sqlalchemy import select

    from keel.store.schema import approvals as approvals_table

    with workspace.store.read() as conn:  # the live runner applied it: no resume was started
        assert conn.execute(select(approvals_table.c.resume_requested_at)).scalar() is None


def _first_request(workspace: Workspace) -> approvals.Approval:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = approvals.list_approvals(workspace.store)
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail("no approval request was opened")


def test_two_gates_park_and_resume_twice(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "two.yml"
    path.write_text(
        """\
type: pipeline
jobs:
  a:
    command: echo a > ${{outputs.out}}/a.txt
    outputs: {out: {type: uri_folder}}
  gate_a:
    type: approval
    inputs: {x: '${{parent.jobs.a.outputs.out}}'}
  after_a:
    command: cat ${{inputs.x}}/a.txt
    inputs: {x: '${{parent.jobs.gate_a.outputs.x}}'}
  gate_b:
    type: approval
    inputs: {n: 7}
  after_b:
    command: echo n=${{inputs.n}} && cat ${{inputs.y}}/a.txt
    inputs: {n: '${{parent.jobs.gate_b.outputs.n}}', y: '${{parent.jobs.gate_a.outputs.x}}'}
"""
    )
    job = start(workspace, path)
    by_step = {a.step_name: a for a in approvals.list_approvals(workspace.store)}
    assert job.status == JobStatus.PAUSED and set(by_step) == {"gate_a", "gate_b"}
    approvals.approve(workspace, by_step["gate_a"].id)
    _wait_for(lambda: steps(workspace, job)["after_a"].status == JobStatus.COMPLETED)
    _wait_for(lambda: get_job(workspace.store, job.name).status == JobStatus.PAUSED)
    assert steps(workspace, job)["after_b"].status == JobStatus.QUEUED
    approvals.approve(workspace, by_step["gate_b"].id)
    ended = wait_until_ended(workspace, job.name)
    assert ended.status == JobStatus.COMPLETED, ended.status_reason
    final = steps(workspace, ended)
    assert "n=7" in log_of(workspace, final["after_b"]) and "a" in log_of(workspace, final["after_b"])
    assert final["gate_a"].status_reason and final["gate_a"].status == JobStatus.COMPLETED


def _wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    pytest.fail("condition not met in time")


def test_cancelling_a_paused_pipeline_closes_its_requests(on_store: Workspace, tmp_path: Path) -> None:
    job = start(on_store, gated(tmp_path))
    assert cancel(on_store, job.name) == JobStatus.CANCELED
    ended = get_job(on_store.store, job.name)
    assert ended.status == JobStatus.CANCELED and ended.status_reason == "canceled while waiting for approval"
    assert {s.status for s in steps(on_store, ended).values()} == {JobStatus.COMPLETED, JobStatus.CANCELED}
    (request,) = approvals.list_approvals(on_store.store, status=None)
    assert request.status == approvals.CANCELED
    with pytest.raises(Conflict, match="already canceled"):
        approvals.approve(on_store, request.id, by="alice")


def test_a_runner_that_could_not_start_is_started_again_by_whoever_looks(
    workspace: Workspace, tmp_path: Path
) -> None:
    """The decision is recorded but its runner never ran (say the machine went down):
    the next look resumes the pipeline."""
    job = start(workspace, gated(tmp_path, "    approvers: [alice]"))
    (request,) = approvals.list_approvals(workspace.store)
    from keel.approvals.requests import decide
    from keel.webhooks import settings_of

    decide(
        workspace.store, settings_of(workspace), request.id, "approve", by="alice", os_user=None, comment=None
    )
    assert get_job(workspace.store, job.name).status == JobStatus.PAUSED  # nobody resumed it
    assert approvals.settle(workspace) == [job.name]
    assert wait_until_ended(workspace, job.name).status == JobStatus.COMPLETED


def test_only_one_resumer_wins(workspace: Workspace, tmp_path: Path) -> None:
    from keel.jobs.submit import resume

    job = start(workspace, gated(tmp_path, "    approvers: [alice]"))
    (request,) = approvals.list_approvals(workspace.store)
    from keel.approvals.requests import decide
    from keel.webhooks import settings_of

    decide(
        workspace.store, settings_of(workspace), request.id, "approve", by="alice", os_user=None, comment=None
    )
    results: list[JobStatus] = []
    racers = [threading.Thread(target=lambda: results.append(resume(workspace, job.name))) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(results).count(JobStatus.COMPLETED) >= 1
    deploys = [s for s in steps(workspace, job).values() if s.step_name == "deploy"]
    assert len(deploys) == 1 and log_of(workspace, deploys[0]).count("model-v1") == 1


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ("    approvers: [alice]\n    min_approvals: 2", "min_approvals is 2 but only 1 approvers are named"),
        ("    timeout: soon", "expected seconds or a duration such as 30m, 4h or 2d"),
        ("    on_timeout: wait", "review.on_timeout"),
        ("    outputs: {other: {type: uri_folder}}", "there is no input 'other'"),
        ("    approver: [alice]", "unknown field 'approver'"),
    ],
)
def test_bad_approval_steps_are_refused_with_file_and_line(tmp_path: Path, gate: str, message: str) -> None:
    with pytest.raises(SpecError, match=r"p\.yml:\d+: jobs\.review") as raised:
        load_job(gated(tmp_path, gate))
    assert message in str(raised.value)


def test_an_approval_is_a_step_not_a_job(tmp_path: Path) -> None:
    path = tmp_path / "alone.yml"
    path.write_text("type: approval\napprovers: [alice]\n")
    with pytest.raises(SpecError, match="an approval is a step of a pipeline, not a job of its own"):
        load_job(path)


def test_no_process_is_left_behind_while_parked(workspace: Workspace, tmp_path: Path) -> None:
    job = start(workspace, gated(tmp_path))
    assert job.status == JobStatus.PAUSED
    mine = str(workspace.config.root)
    leftovers = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "keel.jobs" in command and mine in command:
                leftovers.append(command)
    assert leftovers == []


def test_requests_of_a_pipeline_that_ended_anyway_are_closed(workspace: Workspace, tmp_path: Path) -> None:
    """Its runner died and a reader failed it (as ``reap_dead_jobs`` does): nobody needs to decide."""
    from sqlalchemy import update

    from keel.store.schema import jobs

    job = start(workspace, gated(tmp_path))
    with workspace.store.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(status="failed"))
    assert approvals.settle(workspace) == []
    (request,) = approvals.list_approvals(workspace.store, status=None)
    assert request.status == approvals.CANCELED
    assert request.status_reason == "the pipeline ended (failed) without a decision"
