"""Timeouts, retries, cancel, reruns from failed, a killed runner, nested pipelines, URLs."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.jobs.records import stored_outputs
from keel.jobs.submit import cancel, previous_steps, rerun, run, start_in_background, submit
from keel.specs import load_job
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job, reap_dead_jobs
from keel.workspace import Workspace
from tests.jobs.conftest import executions, keel_cli, run_file, steps_of


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_nested_pipeline_components_run_as_child_pipelines(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, project / "nested.yml")
    assert job.status == JobStatus.COMPLETED, job.status_reason
    steps = steps_of(workspace, job)
    assert steps["inner"].type == "pipeline"
    inner_steps = steps_of(workspace, steps["inner"])
    assert set(inner_steps) == {"inner/prep", "inner/train"}
    report = stored_outputs(workspace.store, job.id)["final"]
    assert "UA" in (workspace.artifacts.local_path(report.uri or "") / "report.json").read_text()


def test_a_step_over_its_timeout_fails_with_exit_code_3(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "slow.yml"
    spec.write_text("command: echo started && sleep 30\nlimits: {timeout: 1}\n")
    started = time.monotonic()
    result = keel_cli(workspace, "job", "create", "-f", str(spec), "--wait")
    assert time.monotonic() - started < 20
    assert result.returncode == 3, result.stderr
    assert "timed out after 1 s" in result.stderr


def test_a_flaky_step_is_retried(workspace: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "second-time"
    spec = tmp_path / "flaky.yml"
    spec.write_text(
        f"command: test -e {marker} || (touch {marker}; echo first attempt fails; exit 1)\n"
        "retry: {count: 2, delay: 0.1}\n"
    )
    job = run_file(workspace, spec)
    assert job.status == JobStatus.COMPLETED
    log = workspace.artifacts.read_bytes(f"{job.artifact_location}/user_logs/std_log.txt").decode()
    assert "first attempt fails" in log and "attempt 2 of 3" in log


def test_cancel_stops_running_processes(workspace: Workspace, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    spec = tmp_path / "long.yml"
    spec.write_text(f"type: pipeline\njobs:\n  sleeper:\n    command: echo $$ > {pidfile}; sleep 60\n")
    job = submit(workspace, load_job(spec))
    start_in_background(workspace, job.name)
    _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    assert cancel(workspace, job.name) == JobStatus.CANCEL_REQUESTED
    _wait_for(lambda: get_job(workspace.store, job.name).status.is_terminal)
    final = get_job(workspace.store, job.name)
    assert final.status == JobStatus.CANCELED
    assert steps_of(workspace, final)["sleeper"].status == JobStatus.CANCELED
    pid = int(pidfile.read_text())
    sleeper = steps_of(workspace, final)["sleeper"]
    assert sleeper.tags["keel.process"].endswith(f":{pid}")  # the step's own process group
    with workspace.store.read() as conn:
        owner = conn.exec_driver_sql("SELECT process_id FROM jobs WHERE name = ?", (sleeper.name,)).scalar()
    assert owner != pid  # the job's owner (heartbeat, reaping) stays the runner
    _wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_canceling_a_queued_job_needs_no_runner(workspace: Workspace, project: Path) -> None:
    job = submit(workspace, load_job(project / "command.yml"))
    assert cancel(workspace, job.name) == JobStatus.CANCELED
    result = keel_cli(workspace, "job", "cancel", job.name)
    assert result.returncode == 1 and "already ended (canceled)" in result.stderr


def test_rerun_from_failed_reuses_what_completed(
    workspace: Workspace, project: Path, ledger: Path, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed"
    flaky_train = [
        "jobs.train.component=null",
        "jobs.train.code=./src",
        "jobs.train.command=python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} "
        f"--model ${{{{outputs.model}}}} --fail-unless {fixed}",
    ]
    job = run_file(workspace, project / "pipeline.yml", flaky_train)
    assert job.status == JobStatus.FAILED
    assert executions(ledger) == ["prep", "train"]
    fixed.touch()
    again = rerun(workspace, job.name)
    run(workspace, again.name, previous=previous_steps(workspace, job.name))
    final = get_job(workspace.store, again.name)
    assert final.status == JobStatus.COMPLETED, final.status_reason
    steps = steps_of(workspace, final)
    assert steps["prep"].reuse_note and "rerun from failed" in steps["prep"].reuse_note
    assert executions(ledger) == ["prep", "train", "train"]


@pytest.mark.slow
def test_a_killed_runner_loses_no_completed_step(
    workspace: Workspace, project: Path, ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 the runner while train runs; the rerun reuses prep and never sees half an output."""
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("KEEL_TEST_HOLD", str(hold))
    job = submit(workspace, load_job(project / "pipeline.yml"))
    runner = subprocess.Popen(
        [sys.executable, "-m", "keel.jobs", "run", job.name, "--workspace", str(workspace.config.root)]
    )
    _wait_for(lambda: executions(ledger) == ["prep", "train"])
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()

    def reaped() -> bool:
        reap_dead_jobs(workspace.store, timeout_seconds=60)
        return get_job(workspace.store, job.name).status == JobStatus.FAILED

    _wait_for(reaped, timeout=15)
    steps = steps_of(workspace, get_job(workspace.store, job.name))
    assert steps["prep"].status == JobStatus.COMPLETED and steps["train"].status == JobStatus.FAILED
    assert stored_outputs(workspace.store, steps["train"].id) == {}  # nothing half-committed
    orphan = steps["train"].name
    again = rerun(workspace, job.name)  # stops the orphaned train process group first
    hold.unlink()
    run(workspace, again.name, previous=previous_steps(workspace, job.name))
    final = get_job(workspace.store, again.name)
    assert final.status == JobStatus.COMPLETED, final.status_reason
    assert executions(ledger) == ["prep", "train", "train"]  # prep was not repeated
    assert steps_of(workspace, final)["prep"].reused_from == steps["prep"].name
    assert orphan not in (get_job(workspace.store, again.name).status_reason or "")


def test_editing_code_while_a_job_runs_changes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "say.py").write_text("print('original')\n")
    spec = tmp_path / "edit.yml"
    spec.write_text(
        "type: pipeline\njobs:\n"
        "  wait:\n    command: sleep 1 && echo done > ${{outputs.o}}/x\n    outputs: {o: }\n"
        "  say:\n    code: ./code\n    command: python say.py > ${{outputs.said}}/said.txt\n"
        "    inputs: {after: '${{parent.jobs.wait.outputs.o}}'}\n    outputs: {said: }\n"
    )
    job = submit(workspace, load_job(spec))
    start_in_background(workspace, job.name)
    time.sleep(0.3)
    (code / "say.py").write_text("print('edited')\n")
    _wait_for(lambda: get_job(workspace.store, job.name).status.is_terminal)
    said = stored_outputs(workspace.store, steps_of(workspace, get_job(workspace.store, job.name))["say"].id)[
        "said"
    ]
    assert (workspace.artifacts.local_path(said.uri or "") / "said.txt").read_text() == "original\n"


@pytest.fixture
def http_file(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving one CSV file."""
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "iris.csv").write_text("a,b\n1,2\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(tmp_path / "served"), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/iris.csv"
    server.shutdown()
    server.server_close()


def test_http_inputs_are_downloaded_and_hashed(workspace: Workspace, tmp_path: Path, http_file: str) -> None:
    spec = tmp_path / "http.yml"
    spec.write_text(
        "command: cp ${{inputs.data}} ${{outputs.copy}}/\n"
        f"inputs:\n  data: {{type: uri_file, path: '{http_file}'}}\n"
        "outputs:\n  copy:\n"
    )
    job = run_file(workspace, spec)
    assert job.status == JobStatus.COMPLETED, job.status_reason
    data = next(item for item in job.inputs if item.name == "data")
    assert data.uri == http_file and data.digest
    again = run_file(workspace, spec)
    assert again.reused_from == job.name


def test_an_unreachable_url_fails_the_job_clearly(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "gone.yml"
    spec.write_text(
        "command: cat ${{inputs.data}}\ninputs:\n  data: {type: uri_file, path: 'http://127.0.0.1:9/none.csv'}\n"
    )
    job = run_file(workspace, spec)
    assert job.status == JobStatus.FAILED
    assert "cannot download http://127.0.0.1:9/none.csv" in (job.status_reason or "")
