"""Moving claimed fires along: submit their jobs, release waiting windows, record endings.

Every function here is safe to run in several schedulers at once: each move is a
compare-and-set (see :mod:`keel.schedules.fires`), and only the winner of a move
does what follows it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from keel.clock import now_ms
from keel.schedules import fires, records
from keel.schedules.due import dependencies, window_plan
from keel.schedules.fires import Fire, FireState
from keel.schedules.jobs import describe_failure, submit_fire
from keel.schedules.records import Schedule
from keel.schedules.windows import dependency_range
from keel.tracking.names import new_job_name
from keel.workspace import Workspace

_log = logging.getLogger(__name__)


@dataclass
class ScheduleCache:
    """Schedules by id, read once per tick."""

    workspace: Workspace
    found: dict[int, Schedule | None] = field(default_factory=dict)

    def get(self, schedule_id: int) -> Schedule | None:
        if schedule_id not in self.found:
            with self.workspace.store.read() as conn:
                self.found[schedule_id] = records.schedule_by_id(conn, schedule_id)
        return self.found[schedule_id]

    def named(self, name: str) -> Schedule | None:
        for schedule in self.found.values():
            if schedule is not None and schedule.name == name:
                return schedule
        with self.workspace.store.read() as conn:
            schedule = records.schedule_named(conn, name)
        if schedule is not None:
            self.found[schedule.id] = schedule
        return schedule


def submit_claimed(
    workspace: Workspace, claimed: Iterable[Fire], schedules: ScheduleCache, *, owner: str
) -> int:
    """Record the job of each fire this process holds the lease of; returns how many."""
    submitted = 0
    for fire in claimed:
        schedule = schedules.get(fire.schedule_id)
        if schedule is None or fire.job_name is None:
            continue
        try:
            submit_fire(
                workspace,
                schedule.create_job,
                fire.values,
                job_name=fire.job_name,
                schedule_name=schedule.name,
                fire_key=fire.key,
            )
        except Exception as error:  # a fire whose job cannot be created is recorded, not retried
            _log.warning("schedule %s: fire %s: %s", schedule.name, fire.key, describe_failure(error))
            with workspace.store.write() as conn:
                fires.move(
                    conn,
                    fire,
                    FireState.SUBMITTING,
                    FireState.ERROR,
                    leased_to=owner,
                    error=describe_failure(error)[:4000],
                )
            continue
        with workspace.store.write() as conn:
            if fires.move(
                conn, fire, FireState.SUBMITTING, FireState.SUBMITTED, leased_to=owner, lease_until=None
            ):
                submitted += 1
    return submitted


def take_over_expired(workspace: Workspace, *, owner: str) -> list[Fire]:
    """Fires whose submitter died mid-way, now leased to ``owner`` to finish (same job name)."""
    now = now_ms()
    with workspace.store.read() as conn:
        stale = fires.expired(conn, FireState.SUBMITTING, now)
    taken = []
    for fire in stale:
        with workspace.store.write() as conn:
            if fires.move(
                conn,
                fire,
                FireState.SUBMITTING,
                FireState.SUBMITTING,
                lease_was=fire.lease_until,
                owner=owner,
                lease_until=now + fires.SUBMIT_LEASE_MS,
            ):
                _log.warning(
                    "finishing fire %s (job %s) left half-submitted by %s",
                    fire.key,
                    fire.job_name,
                    fire.owner,
                )
                taken.append(fire)
    return taken


def release_pending(workspace: Workspace, schedules: ScheduleCache, *, owner: str) -> list[Fire]:
    """Pending fires whose time has come (and, for windows, whose dependencies are met and
    concurrency allows), leased to ``owner`` with a fresh job name, oldest first per schedule."""
    now = now_ms()
    with workspace.store.read() as conn:
        waiting = fires.schedules_with(conn, FireState.PENDING, now=now)
    taken = []
    for schedule_id in waiting:
        schedule = schedules.get(schedule_id)
        if schedule is None or not schedule.enabled:
            continue
        room = 100
        if schedule.trigger_type == "tumbling_window":
            with workspace.store.read() as conn:
                room = schedule.trigger.get("max_concurrency", 1) - fires.count_in_flight(
                    conn, schedule_id=schedule_id
                )
        if room <= 0:
            continue
        with workspace.store.read() as conn:
            pending = fires.in_state(conn, (FireState.PENDING,), now=now, schedule_id=schedule_id, limit=room)
        for fire in pending:
            if schedule.trigger_type == "tumbling_window" and not _window_ready(
                workspace, schedule, fire, schedules
            ):
                continue
            with workspace.store.write() as conn:
                if fires.move(
                    conn,
                    fire,
                    FireState.PENDING,
                    FireState.SUBMITTING,
                    owner=owner,
                    job_name=new_job_name(),
                    lease_until=now + fires.SUBMIT_LEASE_MS,
                ):
                    taken.append(fires.get_fire(conn, fire.id))
    return [fire for fire in taken if fire is not None]


def _window_ready(workspace: Workspace, schedule: Schedule, fire: Fire, schedules: ScheduleCache) -> bool:
    """Every window this one depends on has completed (or was passed over)."""
    plan = window_plan(schedule.trigger)
    for dependency in dependencies(schedule.trigger):
        target = schedule if dependency.schedule is None else schedules.named(dependency.schedule)
        if target is None:
            continue  # the schedule it waited for was deleted: nothing left to wait for
        start, end = dependency_range(fire.time, plan.length, dependency)
        needed = window_plan(target.trigger).overlapping(start, end)
        if not needed:
            continue
        with workspace.store.read() as conn:
            done = fires.windows_done(conn, target.id, needed[0][0], needed[-1][0])
        if done < len(needed):
            return False
    return True


def record_endings(workspace: Workspace, schedules: ScheduleCache) -> int:
    """Fires whose job ended (its runner died, or ended it without saying): record how,
    and put failed windows with retries left back to pending."""
    with workspace.store.read() as conn:
        ended = fires.ended_jobs(conn)
    for fire, status in ended:
        final = {"completed": FireState.COMPLETED, "failed": FireState.FAILED}.get(status, FireState.CANCELED)
        with workspace.store.write() as conn:
            fires.move(conn, fire, (FireState.STARTED, FireState.RUNNING), final)
    _restart_dead_runners(workspace)
    return len(ended) + _retry_failed_windows(workspace, schedules)


def _restart_dead_runners(workspace: Workspace) -> None:
    """A runner that took its fire and died before starting the job (so no heartbeat will
    ever fail it) gives the fire back: it is started again, still once."""
    from keel.tracking.jobs import process_alive

    host = socket.gethostname()
    with workspace.store.read() as conn:
        stuck = fires.taken_but_not_started(conn, before=now_ms() - fires.LAUNCH_GRACE_MS)
    for fire in stuck:
        owner_host, _, pid = (fire.owner or "").rpartition(":")
        if owner_host != host or not pid.isdigit() or process_alive(int(pid)):
            continue
        with workspace.store.write() as conn:
            if fires.move(
                conn,
                fire,
                FireState.RUNNING,
                FireState.STARTED,
                lease_was=fire.lease_until,
                lease_until=0,
                owner=None,
            ):
                _log.warning(
                    "the runner of fire %s (job %s) died before starting it; starting it again",
                    fire.key,
                    fire.job_name,
                )


def _retry_failed_windows(workspace: Workspace, schedules: ScheduleCache) -> int:
    now = now_ms()
    with workspace.store.read() as conn:
        failed = fires.recently_failed(conn, since=now - 24 * 3_600_000)
    retried = 0
    for fire in failed:
        schedule = schedules.get(fire.schedule_id)
        if schedule is None or schedule.trigger_type != "tumbling_window":
            continue
        if fire.attempt > schedule.trigger.get("retry_count", 0):
            continue
        delay = schedule.trigger.get("retry_interval", 0)
        with workspace.store.write() as conn:
            if fires.move(
                conn,
                fire,
                FireState.FAILED,
                FireState.PENDING,
                attempt=fire.attempt + 1,
                not_before=now + delay,
                finished_at=None,
                job_name=None,
            ):
                retried += 1
    return retried
