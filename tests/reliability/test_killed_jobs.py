"""A process killed with SIGKILL mid-run: its job must not stay "running" forever.

The writer thread of a logging process beats the job's heart every few seconds.
Readers (``keel.get_job``, ``keel job list``) settle jobs whose process is gone:
on the same host as soon as the process has vanished (a short grace after the last
beat), elsewhere once no beat arrived within ``heartbeat_timeout_seconds``. Both
paths are exercised here with a real child process and a real kill -9. Wall
time: about 3 s for the local path, 9 s for the timeout path (it waits the
timeout out).
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

import keel
from keel.clock import now_ms
from keel.store.schema import jobs
from keel.tracking.jobs import HEARTBEAT_INTERVAL_SECONDS
from keel.workspace import Workspace

# The child logs into the workspace that keel.yaml (or .keel/) in its folder names.
VICTIM = textwrap.dedent(
    """
    import time

    import keel

    keel.set_workspace()
    run = keel.start_run(experiment="doomed")
    keel.log_param("fate", "kill -9")
    step = 0
    while True:
        keel.log_metric("loss", 1.0 / (step + 1), step=step)
        step += 1
        if step == 200:
            keel.flush()
            print(run.name, flush=True)
        time.sleep(0.001)
    """
)
TIMEOUT_SECONDS = HEARTBEAT_INTERVAL_SECONDS + 3  # longer than a beat, or live jobs would die
REASON = "stopped without ending it"

# Slow, and kept on one xdist worker so that they never run at the same time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability")]


@pytest.fixture
def victim(tmp_path: Path, child_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A child process logging into the test's workspace; killed and reaped at the end."""
    script = tmp_path / "victim.py"
    script.write_text(VICTIM, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    process.kill()
    process.wait(timeout=10)  # reap it: no zombie outlives the test
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()


def _job_name(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The job name the child prints once its first points are committed."""
    assert process.stdout is not None and process.stderr is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(f"the child never reported its job: {process.stderr.read()}")
    return line.strip()


def _kill(process: subprocess.Popen[str]) -> None:
    process.kill()
    assert process.wait(timeout=10) == -9  # waited for: the child is reaped, not a zombie


def _cli_status(tmp_path: Path, child_env: dict[str, str], name: str) -> dict[str, str]:
    """What ``keel job list`` reports for the job, run as a user would from the folder."""
    listed = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", "job", "list", "--output", "json"],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = [job for job in json.loads(listed.stdout) if job["name"] == name]
    assert len(found) == 1
    return {"status": found[0]["status"], "reason": found[0]["status_reason"] or ""}


def test_a_killed_local_process_fails_its_job_as_soon_as_a_reader_looks(
    sdk: Workspace, victim: subprocess.Popen[str], tmp_path: Path, child_env: dict[str, str]
) -> None:
    name = _job_name(victim)
    assert keel.get_job(name).status == keel.JobStatus.RUNNING  # alive: readers leave it be
    _kill(victim)
    killed_at = time.monotonic()

    job = keel.get_job(name)
    while job.status == keel.JobStatus.RUNNING and time.monotonic() - killed_at < 10:
        time.sleep(0.2)
        job = keel.get_job(name)

    assert job.status == keel.JobStatus.FAILED
    assert REASON in (job.status_reason or "")
    # Noticed within the local grace after the last beat, not the 60 s heartbeat timeout.
    assert time.monotonic() - killed_at < 5
    assert job.metrics["loss"].count >= 200 and job.params == {"fate": "kill -9"}
    assert job.end_time is not None
    assert _cli_status(tmp_path, child_env, name) == {
        "status": "failed",
        "reason": job.status_reason,
    }


def test_a_job_on_another_host_fails_once_its_heartbeat_times_out(
    sdk: Workspace, victim: subprocess.Popen[str], tmp_path: Path, child_env: dict[str, str]
) -> None:
    (tmp_path / "keel.yaml").write_text(f"heartbeat_timeout_seconds: {TIMEOUT_SECONDS}\n")
    workspace = keel.set_workspace()  # the same folder, now read through keel.yaml
    assert workspace.config.heartbeat_timeout_seconds == TIMEOUT_SECONDS
    name = _job_name(victim)
    _kill(victim)
    with workspace.store.write() as conn:  # as if it had run on another machine
        conn.execute(update(jobs).where(jobs.c.name == name).values(hostname="gpu-node-7"))

    observations = []
    while True:
        before = now_ms()
        job = keel.get_job(name)
        observations.append((before, now_ms(), job.status))
        if job.status != keel.JobStatus.RUNNING or len(observations) > 200:
            break
        time.sleep(0.1)

    assert job.status == keel.JobStatus.FAILED and REASON in (job.status_reason or "")
    beat = job.end_time  # a reaped job ends at its last heartbeat
    assert beat is not None
    deadline = beat + TIMEOUT_SECONDS * 1000
    assert observations[0][2] == keel.JobStatus.RUNNING  # the same-host shortcut did not apply
    for before, after, status in observations:
        if status == keel.JobStatus.RUNNING:
            assert before < deadline  # nobody left a timed-out job running
        else:
            assert after >= deadline  # and nobody failed it early
    assert _cli_status(tmp_path, child_env, name) == {
        "status": "failed",
        "reason": job.status_reason,
    }
