"""The scheduler loop end to end: real runner processes, real jobs, counted in the store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from keel.clock import now_ms
from keel.schedules import fires, records
from keel.schedules.fires import FireState
from keel.schedules.loop import Scheduler
from keel.schedules.operations import create_schedule
from keel.schedules.timing import iso
from keel.store.schema import schedules
from keel.tracking.jobs import get_job
from keel.tracking.search import search_jobs
from keel.workspace import Workspace
from tests.schedules.conftest import ECHO_JOB, wait_for, write

MINUTE = 60_000


def fires_of(workspace: Workspace, name: str) -> list[fires.Fire]:
    schedule = records.get_schedule(workspace.store, name)
    return sorted(
        fires.recent_fires(workspace.store, schedule.id, limit=10_000), key=lambda f: (f.time, f.id)
    )


def finished(workspace: Workspace, name: str, count: int) -> list[fires.Fire]:
    found = [f for f in fires_of(workspace, name) if f.state in fires.FINISHED]
    return found if len(found) >= count else []


def rewind(workspace: Workspace, name: str, minutes: int) -> None:
    """As if the schedule had been created long ago and the scheduler down since ``minutes`` ago."""
    schedule = records.get_schedule(workspace.store, name)
    trigger = {**schedule.trigger, "start": schedule.trigger["start"] - 3_600_000}
    with workspace.store.write() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.name == name)
            .values(next_fire_at=(now_ms() // MINUTE - minutes) * MINUTE, trigger=json.dumps(trigger))
        )


def test_a_cron_schedule_fires_its_job_with_the_fire_time(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    create_schedule(
        workspace,
        write(
            tmp_path,
            "s.yml",
            "name: every_second\ntrigger: {type: cron, expression: '* * * * * *'}\ncreate_job: ./job.yml\n",
        ),
    )
    scheduler = Scheduler(workspace)
    done = wait_for(lambda: finished(workspace, "every_second", 2), tick=scheduler.tick, timeout=60)
    for fire in done[:2]:
        job = get_job(workspace.store, fire.job_name or "")
        assert fire.state == FireState.COMPLETED and job.status.value == "completed"
        assert [i.value for i in job.inputs if i.name == "note"] == [f'"{fire.key}"']
        assert job.tags["keel.schedule"] == "every_second" and job.experiment_name == "every_second"


@pytest.mark.parametrize(("catchup", "expected"), [("all", 10), ("latest", 1), ("none", 1)])
def test_catch_up_after_downtime(workspace: Workspace, tmp_path: Path, catchup: str, expected: int) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    create_schedule(
        workspace,
        write(
            tmp_path,
            "s.yml",
            f"name: minutely\ncatchup: {catchup}\n"
            "trigger: {type: cron, expression: '* * * * *'}\ncreate_job: ./job.yml\n",
        ),
    )
    rewind(workspace, "minutely", 9)  # due 9 minutes ago: ten occurrences up to now
    scheduler = Scheduler(workspace, launch=False)
    scheduler.tick()
    scheduler.tick()
    claimed = fires_of(workspace, "minutely")
    assert len(claimed) == expected
    assert all(f.state == FireState.SUBMITTED for f in claimed)
    jobs = search_jobs(workspace.store, max_results=100).jobs
    assert sorted(j.name for j in jobs) == sorted(f.job_name for f in claimed)
    assert records.get_schedule(workspace.store, "minutely").next_fire_at > now_ms()


def test_none_skips_a_fire_missed_by_more_than_a_minute(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    create_schedule(
        workspace,
        write(
            tmp_path,
            "s.yml",
            "name: hourly\ncatchup: none\n"
            "trigger: {type: cron, expression: '0 * * * *'}\ncreate_job: ./job.yml\n",
        ),
    )
    with workspace.store.write() as conn:
        conn.execute(update(schedules).values(next_fire_at=now_ms() - 5 * MINUTE))
    Scheduler(workspace, launch=False).tick()
    assert fires_of(workspace, "hourly") == []


def window_schedule(
    tmp_path: Path, name: str, extra: str = "", job: str = "./job.yml", minutes: int = 4
) -> Path:
    """Minute windows: ``minutes`` of them, all in the past (so the count never grows mid-test)."""
    first = (now_ms() // MINUTE - minutes) * MINUTE
    return write(
        tmp_path,
        f"{name}.yml",
        f"name: {name}\ntrigger:\n  type: tumbling_window\n  frequency: minute\n"
        f"  start_time: '{iso(first)}'\n  end_time: '{iso(first + minutes * MINUTE)}'\n"
        f"{extra}create_job: {job}\n",
    )


WINDOW_JOB = """\
type: command
command: echo ${{inputs.start}} ${{inputs.end}} >> %s
inputs:
  start: ${{trigger.window_start}}
  end: ${{trigger.window_end}}
"""


def test_past_windows_are_backfilled_oldest_first_each_once(workspace: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "windows.log"
    write(tmp_path, "job.yml", WINDOW_JOB % log)
    create_schedule(
        workspace, window_schedule(tmp_path, "minutes", "  depends_on: [{offset: '-00:01:00'}]\n")
    )
    scheduler = Scheduler(workspace)
    done = wait_for(lambda: finished(workspace, "minutes", 4), tick=scheduler.tick, timeout=90)
    assert [f.state for f in done] == [FireState.COMPLETED] * 4
    lines = log.read_text().splitlines()
    assert lines == [f"{f.values['window_start']} {f.values['window_end']}" for f in done]
    starts = [get_job(workspace.store, f.job_name or "").start_time or 0 for f in done]
    assert starts == sorted(starts)


def test_a_failed_window_is_retried(workspace: Workspace, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    write(tmp_path, "job.yml", f"type: command\ncommand: test -f {marker} || (touch {marker}; exit 1)\n")
    create_schedule(
        workspace, window_schedule(tmp_path, "flaky", "  retry: {count: 2, interval_seconds: 0}\n", minutes=1)
    )
    scheduler = Scheduler(workspace)
    done = wait_for(
        lambda: [f for f in finished(workspace, "flaky", 1) if f.state == FireState.COMPLETED],
        tick=scheduler.tick,
        timeout=60,
    )
    assert done[0].attempt == 2
    jobs = {j.status.value for j in search_jobs(workspace.store, max_results=10).jobs}
    assert jobs == {"failed", "completed"}


def test_windows_wait_for_the_windows_they_depend_on(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB.replace("${{trigger.time}}", "${{trigger.window_start}}"))
    create_schedule(workspace, window_schedule(tmp_path, "upstream", minutes=2))
    create_schedule(
        workspace,
        window_schedule(
            tmp_path,
            "downstream",
            "  max_concurrency: 2\n  depends_on: [{schedule: upstream, offset: 0}]\n",
            minutes=2,
        ),
    )
    with workspace.store.write() as conn:  # hold upstream back: downstream must wait
        conn.execute(update(schedules).where(schedules.c.name == "upstream").values(enabled=0))
    scheduler = Scheduler(workspace)
    for _ in range(3):
        scheduler.tick()
    assert [f.state for f in fires_of(workspace, "downstream")] == [FireState.PENDING] * 2
    with workspace.store.write() as conn:
        conn.execute(update(schedules).where(schedules.c.name == "upstream").values(enabled=1))
    wait_for(lambda: finished(workspace, "downstream", 2), tick=scheduler.tick, timeout=90)
    up = {f.key: get_job(workspace.store, f.job_name or "") for f in fires_of(workspace, "upstream")}
    for fire in fires_of(workspace, "downstream"):
        job = get_job(workspace.store, fire.job_name or "")
        assert (job.start_time or 0) >= (up[fire.key].end_time or 0)


def test_a_job_completed_trigger_chains_schedules(workspace: Workspace, tmp_path: Path) -> None:
    write(tmp_path, "job.yml", ECHO_JOB)
    write(
        tmp_path,
        "after.yml",
        "type: command\ncommand: echo ${{inputs.upstream}}\n"
        "inputs: {upstream: '${{trigger.job_name}} ${{trigger.job_status}}'}\n",
    )
    create_schedule(
        workspace,
        write(
            tmp_path,
            "a.yml",
            "name: first\ntrigger: {type: cron, expression: '0 0 1 1 *'}\ncreate_job: ./job.yml\n",
        ),
    )
    create_schedule(
        workspace,
        write(
            tmp_path,
            "b.yml",
            "name: then\ntrigger: {type: job_completed, schedule: first}\ncreate_job: ./after.yml\n",
        ),
    )
    from keel.schedules.operations import trigger_now

    fired = trigger_now(workspace, "first", runner_limit=4)
    scheduler = Scheduler(workspace)
    chained = wait_for(lambda: finished(workspace, "then", 1), tick=scheduler.tick, timeout=60)
    job = get_job(workspace.store, chained[0].job_name or "")
    assert [i.value for i in job.inputs if i.name == "upstream"] == [f'"{fired.job_name} completed"']
    for _ in range(3):
        scheduler.tick()
        time.sleep(0.4)
    assert len(fires_of(workspace, "then")) == 1
