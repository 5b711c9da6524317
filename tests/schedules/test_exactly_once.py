"""Exactly once, on SQLite and PostgreSQL: claims under concurrency, and recovery of a fire
whose scheduler died between claiming it and submitting (or starting) its job."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, update

from keel.clock import now_ms
from keel.schedules import fires, records
from keel.schedules.fires import FireState, NewFire
from keel.schedules.launch import launch_ready, spawn
from keel.schedules.loop import Scheduler
from keel.schedules.operations import create_schedule
from keel.store.schema import jobs, schedule_fires, schedules
from keel.tracking import jobs as job_ops
from keel.tracking.experiments import get_or_create_experiment
from keel.workspace import Workspace
from tests.schedules.conftest import ECHO_JOB, wait_for, write

MINUTE = 60_000


def hourly(workspace: Workspace, tmp_path: Path, job: str = ECHO_JOB) -> records.Schedule:
    write(tmp_path, "job.yml", job)
    body = "name: hourly\ntrigger: {type: cron, expression: '0 * * * *'}\ncreate_job: ./job.yml\n"
    return create_schedule(workspace, write(tmp_path, "s.yml", body)).schedule


def claim_as_dead_scheduler(workspace: Workspace, schedule: records.Schedule) -> fires.Fire:
    """A fire claimed by a scheduler that was killed before it submitted (its lease ran out)."""
    with workspace.store.write() as conn:
        [fire] = fires.claim(
            conn,
            schedule.id,
            [NewFire("2024-01-01T00:00:00Z", 0, "scheduled", {"time": "2024-01-01T00:00:00Z"})],
            owner="dead:1",
        )
        conn.execute(update(schedule_fires).values(lease_until=now_ms() - 1))
    return fire


def job_count(workspace: Workspace) -> int:
    with workspace.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())


def test_a_claimed_fire_whose_scheduler_died_is_submitted_once(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    schedule = hourly(any_workspace, tmp_path)
    fire = claim_as_dead_scheduler(any_workspace, schedule)
    for _ in range(3):
        Scheduler(any_workspace, launch=False).tick()  # three restarts
    with any_workspace.store.read() as conn:
        after = fires.get_fire(conn, fire.id)
    assert after is not None and after.state == FireState.SUBMITTED and after.job_name == fire.job_name
    assert job_count(any_workspace) == 1
    assert job_ops.get_job(any_workspace.store, fire.job_name or "").status.value == "queued"


def test_a_job_recorded_without_its_spec_is_replaced_not_doubled(
    any_workspace: Workspace, tmp_path: Path
) -> None:
    schedule = hourly(any_workspace, tmp_path)
    fire = claim_as_dead_scheduler(any_workspace, schedule)
    experiment = get_or_create_experiment(any_workspace.store, "hourly")
    job_ops.create_job(any_workspace.store, experiment, name=fire.job_name, status=job_ops.JobStatus.QUEUED)
    Scheduler(any_workspace, launch=False).tick()
    assert job_count(any_workspace) == 1
    with any_workspace.store.read() as conn:
        spec = conn.execute(select(jobs.c.spec).where(jobs.c.name == fire.job_name)).scalar_one()
    assert json.loads(spec)["kind"] == "command"


def test_concurrent_schedulers_claim_each_fire_once(any_workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    for index in range(5):
        body = (
            f"name: minutely_{index}\ncatchup: all\ntrigger: {{type: cron, expression: '* * * * *'}}\n"
            "create_job: ./job.yml\n"
        )
        create_schedule(any_workspace, write(tmp_path, f"s{index}.yml", body))
    with any_workspace.store.write() as conn:  # each was due twenty minutes ago: 21 fires each
        for row in conn.execute(select(schedules.c.id, schedules.c.trigger)).all():
            trigger = {**json.loads(row.trigger), "start": 0}
            conn.execute(
                update(schedules)
                .where(schedules.c.id == row.id)
                .values(trigger=json.dumps(trigger), next_fire_at=(now_ms() // MINUTE - 20) * MINUTE)
            )
    schedulers = [Scheduler(any_workspace, launch=False) for _ in range(4)]
    errors: list[BaseException] = []

    def run(scheduler: Scheduler) -> None:
        try:
            for _ in range(6):
                scheduler.tick()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with any_workspace.store.read() as conn:
        rows = conn.execute(
            select(schedule_fires.c.fire_key, schedule_fires.c.job_name, schedule_fires.c.state)
        ).all()
    with any_workspace.store.read() as conn:
        per_schedule = conn.execute(
            select(schedule_fires.c.schedule_id, func.count()).group_by(schedule_fires.c.schedule_id)
        ).all()
    # 21 occurrences each (22 if a minute turned while the schedulers ran), none twice
    assert len(per_schedule) == 5 and all(21 <= count <= 22 for _, count in per_schedule)
    assert {row.state for row in rows} == {"submitted"}
    assert len({row.job_name for row in rows}) == len(rows) == job_count(any_workspace)


def test_a_fire_started_twice_runs_once(any_workspace: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "ran.log"
    schedule = hourly(any_workspace, tmp_path, f"type: command\ncommand: echo once >> {log}\n")
    fire = claim_as_dead_scheduler(any_workspace, schedule)
    Scheduler(any_workspace, launch=False).tick()
    with any_workspace.store.write() as conn:
        assert fires.move(conn, fire, FireState.SUBMITTED, FireState.STARTED, lease_until=now_ms() - 1)
    spawn(any_workspace, fire.id, fire.job_name or "")  # the runner the dead scheduler had started…
    assert launch_ready(any_workspace, limit=4) == 1  # …and the one started after its grace ran out

    def ended() -> bool:
        with any_workspace.store.read() as conn:
            found = fires.get_fire(conn, fire.id)
        return found is not None and found.state == FireState.COMPLETED

    wait_for(ended, timeout=60)
    time.sleep(1.0)  # the losing runner exits at once; give it time to have run, had it won too
    assert log.read_text() == "once\n"


def test_a_fire_whose_runner_died_before_starting_its_job_runs_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    log = tmp_path / "ran.log"
    schedule = hourly(workspace, tmp_path, f"type: command\ncommand: echo once >> {log}\n")
    fire = claim_as_dead_scheduler(workspace, schedule)
    Scheduler(workspace, launch=False).tick()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    with workspace.store.write() as conn:
        assert fires.move(
            conn,
            fire,
            FireState.SUBMITTED,
            FireState.RUNNING,
            owner=f"{socket.gethostname()}:{dead.pid}",
            lease_until=None,
        )
        conn.execute(update(schedule_fires).values(updated_at=now_ms() - fires.LAUNCH_GRACE_MS - 1))
    scheduler = Scheduler(workspace)

    def ended() -> bool:
        with workspace.store.read() as conn:
            found = fires.get_fire(conn, fire.id)
        return found is not None and found.state == FireState.COMPLETED

    wait_for(ended, tick=scheduler.tick, timeout=60, every=0.2)
    assert log.read_text() == "once\n"
