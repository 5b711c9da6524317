"""Start fired jobs in detached runner processes, each exactly once.

``launch_ready`` moves submitted fires to ``started`` (one compare-and-set each) and
spawns ``python -m keel.schedules.launch FIRE`` for each, through ``sh -c '… &'`` so
the scheduler never waits for or reaps them. The spawned process takes the fire
(``started`` → ``running``, again a compare-and-set) before it runs the job, so a
fire started twice — a scheduler that died between its write and its spawn is
covered by relaunching after a grace period — still runs once.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable

from keel.clock import now_ms
from keel.schedules import fires
from keel.schedules.fires import FireState
from keel.workspace import Workspace

_log = logging.getLogger(__name__)


def default_runner_limit() -> int:
    """How many fired jobs run at once by default: two per core."""
    return 2 * (os.cpu_count() or 2)


def launch_ready(workspace: Workspace, *, limit: int, start: Callable[[int, str], bool] | None = None) -> int:
    """Start runners for submitted fires, oldest first, while fewer than ``limit`` run.

    ``start`` (the scheduler's fork server) is tried first; a new process otherwise.
    """
    now = now_ms()
    with workspace.store.read() as conn:
        busy = fires.count_in_flight(conn, states=(FireState.STARTED, FireState.RUNNING))
        room = limit - busy
        ready = fires.in_state(conn, (FireState.SUBMITTED,), limit=room) if room > 0 else []
        stale = fires.expired(conn, FireState.STARTED, now)
    started = 0
    for fire in [*stale, *ready]:
        with workspace.store.write() as conn:
            won = fires.move(
                conn,
                fire,
                fire.state,
                FireState.STARTED,
                lease_was=fire.lease_until,
                lease_until=now + fires.LAUNCH_GRACE_MS,
            )
        if won:
            if fire.state == FireState.STARTED:
                _log.warning(
                    "fire %s of job %s was never taken by its runner; starting it again",
                    fire.key,
                    fire.job_name,
                )
            if start is None or not start(fire.id, fire.job_name or "job"):
                spawn(workspace, fire.id, fire.job_name or "job")
            started += 1
    return started


def spawn(workspace: Workspace, fire_id: int, job_name: str) -> None:
    """A detached ``python -m keel.schedules.launch`` for the fire."""
    config = workspace.config
    log = config.root / "runs" / f"{job_name}.runner.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "keel.schedules.launch", str(fire_id), "--workspace", str(config.root)]
    environment = dict(os.environ)
    environment.update(KEEL_DATABASE_URL=config.database_url, KEEL_ARTIFACTS_URL=config.artifacts_url)
    line = f"{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1 < /dev/null &"
    subprocess.run(["/bin/sh", "-c", line], env=environment, start_new_session=True, check=True)


def run_fire(workspace: Workspace, fire_id: int) -> int:
    """Take the fire and run its job here, to the end; 0 when it completed."""
    from keel.errors import KeelError
    from keel.jobs.submit import run
    from keel.tracking.jobs import get_job

    owner = fires.this_process()
    with workspace.store.write() as conn:
        if not fires.move(conn, fire_id, FireState.STARTED, FireState.RUNNING, owner=owner, lease_until=None):
            return 0  # another runner took it: it runs there
        fire = fires.get_fire(conn, fire_id)
    assert fire is not None and fire.job_name is not None
    try:
        status = run(workspace, fire.job_name).value
    except KeelError as error:
        sys.stderr.write(f"error: {error}\n")
        status = get_job(workspace.store, fire.job_name).status.value
    settle(workspace, fire_id, status)
    return 0 if status == "completed" else 1


def settle(workspace: Workspace, fire_id: int, job_status: str) -> bool:
    """Record how the fire's job ended (if nobody did yet); retries are the scheduler's."""
    final = {"completed": FireState.COMPLETED, "failed": FireState.FAILED, "canceled": FireState.CANCELED}
    if job_status not in final:
        return False
    with workspace.store.write() as conn:
        return fires.move(conn, fire_id, (FireState.STARTED, FireState.RUNNING), final[job_status])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.schedules.launch")
    parser.add_argument("fire", type=int)
    parser.add_argument("--workspace", required=True)
    arguments = parser.parse_args(argv)
    workspace = Workspace.open(arguments.workspace)
    try:
        return run_fire(workspace, arguments.fire)
    finally:
        workspace.close()


if __name__ == "__main__":
    sys.exit(main())
