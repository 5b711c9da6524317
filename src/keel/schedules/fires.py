"""Fires: one row per thing a schedule does, claimed under UNIQUE (schedule, fire key).

    pending ─▶ submitting ─▶ submitted ─▶ started ─▶ running ─▶ completed | failed | canceled
     (waits: delay,   (job       (job       (runner     (runner      │
      dependencies,    recorded)  queued)    spawned)    took it)    └─▶ pending (retry, rerun)
      concurrency)                                 error: the job could not be created
                                                   skipped: a window passed over on catch-up

Every move is a compare-and-set on the state read (``UPDATE … WHERE state = …``), so
whoever wins a move does its side effect and nobody else does. A move that holds work
in flight (``submitting``, ``started``) carries a lease; a scheduler that finds a lease
expired takes the work over, which is how a scheduler killed at any point loses
nothing: the job's name was chosen with the claim, so finishing a half-done submit
never creates a second job.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from keel.clock import now_ms
from keel.store import Store
from keel.store.schema import jobs, schedule_fires, schedules
from keel.tracking.names import new_job_name


class FireState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    STARTED = "started"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    ERROR = "error"
    SKIPPED = "skipped"


IN_FLIGHT = (FireState.SUBMITTING, FireState.SUBMITTED, FireState.STARTED, FireState.RUNNING)
FINISHED = (FireState.COMPLETED, FireState.FAILED, FireState.CANCELED, FireState.ERROR, FireState.SKIPPED)
# A window counts as done for windows that depend on it when it completed or was passed over.
SATISFIED = (FireState.COMPLETED.value, FireState.SKIPPED.value)
SUBMIT_LEASE_MS = 30_000
LAUNCH_GRACE_MS = 60_000


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class NewFire:
    """A fire to claim: its unique key, its time and the ``${{trigger.*}}`` values it carries."""

    key: str
    time: int
    kind: str
    values: dict[str, Any]
    window_end: int | None = None
    state: FireState = FireState.SUBMITTING
    not_before: int | None = None


@dataclass(frozen=True)
class Fire:
    id: int
    schedule_id: int
    key: str
    time: int
    kind: str
    state: FireState
    attempt: int
    job_name: str | None
    values: dict[str, Any]
    window_end: int | None
    not_before: int | None
    lease_until: int | None
    owner: str | None
    error: str | None
    created_at: int
    updated_at: int
    finished_at: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "time": self.time,
            "kind": self.kind,
            "state": self.state.value,
            "attempt": self.attempt,
            "job": self.job_name,
            "window_end": self.window_end,
            "error": self.error,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }


def claim(conn: Connection, schedule_id: int, fires: Sequence[NewFire], *, owner: str) -> list[Fire]:
    """Insert the fires not claimed before; returns the ones this call claimed.

    A fire claimed ready to submit gets its job name and a lease for ``owner`` now.
    """
    if not fires:
        return []
    now = now_ms()
    rows = [
        {
            "schedule_id": schedule_id,
            "fire_key": fire.key,
            "fire_time": fire.time,
            "window_end": fire.window_end,
            "kind": fire.kind,
            "state": fire.state.value,
            "attempt": 1,
            "job_name": new_job_name() if fire.state == FireState.SUBMITTING else None,
            "trigger_values": json.dumps(fire.values, sort_keys=True),
            "not_before": fire.not_before,
            "lease_until": now + SUBMIT_LEASE_MS if fire.state == FireState.SUBMITTING else None,
            "owner": owner if fire.state == FireState.SUBMITTING else None,
            "created_at": now,
            "updated_at": now,
            "finished_at": now if fire.state == FireState.SKIPPED else None,
        }
        for fire in fires
    ]
    ids = [row.id for row in conn.execute(_insert_new(conn.dialect.name), rows)]
    if not ids:
        return []
    found = conn.execute(select(schedule_fires).where(schedule_fires.c.id.in_(ids))).all()
    return sorted((fire_from(row) for row in found), key=lambda fire: (fire.time, fire.id))


def _insert_new(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(schedule_fires).on_conflict_do_nothing(index_elements=["schedule_id", "fire_key"])
    return statement.returning(schedule_fires.c.id)


def move(
    conn: Connection,
    fire: Fire | int,
    expected: FireState | Iterable[FireState],
    to: FireState,
    *,
    leased_to: str | None = None,
    lease_was: int | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set: move the fire to ``to`` if it is still in ``expected`` — and, with
    ``leased_to``, still leased to that owner; with ``lease_was``, its lease unchanged
    since it was read (how an expired lease is taken over by one scheduler, not two).
    True when this call made the move."""
    fire_id = fire if isinstance(fire, int) else fire.id
    states = [expected.value] if isinstance(expected, FireState) else [s.value for s in expected]
    condition = and_(schedule_fires.c.id == fire_id, schedule_fires.c.state.in_(states))
    if leased_to is not None:
        condition = and_(condition, schedule_fires.c.owner == leased_to)
    if lease_was is not None:
        condition = and_(condition, schedule_fires.c.lease_until == lease_was)
    now = now_ms()
    if to in FINISHED:
        values.setdefault("finished_at", now)
    result = conn.execute(
        update(schedule_fires).where(condition).values(state=to.value, updated_at=now, **values)
    )
    return result.rowcount == 1


def get_fire(conn: Connection, fire_id: int) -> Fire | None:
    row = conn.execute(select(schedule_fires).where(schedule_fires.c.id == fire_id)).first()
    return None if row is None else fire_from(row)


def fire_by_key(conn: Connection, schedule_id: int, key: str) -> Fire | None:
    row = conn.execute(
        select(schedule_fires).where(
            schedule_fires.c.schedule_id == schedule_id, schedule_fires.c.fire_key == key
        )
    ).first()
    return None if row is None else fire_from(row)


def in_state(
    conn: Connection,
    states: Sequence[FireState],
    *,
    now: int | None = None,
    schedule_id: int | None = None,
    limit: int = 500,
) -> list[Fire]:
    """Fires in ``states`` (with ``now``: only those whose ``not_before`` has come), oldest first."""
    query = select(schedule_fires).where(schedule_fires.c.state.in_([s.value for s in states]))
    if now is not None:
        query = query.where(or_(schedule_fires.c.not_before.is_(None), schedule_fires.c.not_before <= now))
    if schedule_id is not None:
        query = query.where(schedule_fires.c.schedule_id == schedule_id)
    query = query.order_by(schedule_fires.c.fire_time, schedule_fires.c.id).limit(limit)
    return [fire_from(row) for row in conn.execute(query)]


def schedules_with(conn: Connection, state: FireState, *, now: int) -> list[int]:
    """The schedules that have fires in ``state`` whose time has come."""
    query = (
        select(schedule_fires.c.schedule_id)
        .where(
            schedule_fires.c.state == state.value,
            or_(schedule_fires.c.not_before.is_(None), schedule_fires.c.not_before <= now),
        )
        .distinct()
    )
    return [int(row.schedule_id) for row in conn.execute(query)]


def leased_to(conn: Connection, owner: str, *, limit: int) -> list[Fire]:
    """Fires being submitted under ``owner``'s lease, oldest first."""
    query = (
        select(schedule_fires)
        .where(schedule_fires.c.state == FireState.SUBMITTING.value, schedule_fires.c.owner == owner)
        .order_by(schedule_fires.c.fire_time, schedule_fires.c.id)
        .limit(limit)
    )
    return [fire_from(row) for row in conn.execute(query)]


def expired(conn: Connection, state: FireState, now: int, *, limit: int = 100) -> list[Fire]:
    """Fires whose holder's lease ran out (its process died, or is far too slow)."""
    query = (
        select(schedule_fires)
        .where(schedule_fires.c.state == state.value, schedule_fires.c.lease_until < now)
        .order_by(schedule_fires.c.fire_time)
        .limit(limit)
    )
    return [fire_from(row) for row in conn.execute(query)]


def count_in_flight(
    conn: Connection, *, schedule_id: int | None = None, states: Sequence[FireState] = IN_FLIGHT
) -> int:
    query = (
        select(func.count())
        .select_from(schedule_fires)
        .where(schedule_fires.c.state.in_([s.value for s in states]))
    )
    if schedule_id is not None:
        query = query.where(schedule_fires.c.schedule_id == schedule_id)
    return int(conn.execute(query).scalar_one())


def ended_jobs(conn: Connection, *, limit: int = 500) -> list[tuple[Fire, str]]:
    """Fires whose runner was started and whose job has ended, with the job's status."""
    terminal = ["completed", "failed", "canceled"]
    query = (
        select(schedule_fires, jobs.c.status.label("job_status"))
        .join(jobs, jobs.c.name == schedule_fires.c.job_name)
        .where(
            schedule_fires.c.state.in_([FireState.STARTED.value, FireState.RUNNING.value]),
            jobs.c.status.in_(terminal),
        )
        .limit(limit)
    )
    return [(fire_from(row), str(row.job_status)) for row in conn.execute(query)]


def recently_failed(conn: Connection, *, since: int, limit: int = 500) -> list[Fire]:
    """Failed windows of tumbling schedules (candidates for a retry)."""
    query = (
        select(schedule_fires)
        .join(schedules, schedules.c.id == schedule_fires.c.schedule_id)
        .where(
            schedule_fires.c.state == FireState.FAILED.value,
            schedule_fires.c.finished_at >= since,
            schedules.c.trigger_type == "tumbling_window",
        )
        .order_by(schedule_fires.c.fire_time)
        .limit(limit)
    )
    return [fire_from(row) for row in conn.execute(query)]


def taken_but_not_started(conn: Connection, *, before: int, limit: int = 100) -> list[Fire]:
    """Fires a runner took whose job is still queued long after (the runner may have died)."""
    query = (
        select(schedule_fires)
        .join(jobs, jobs.c.name == schedule_fires.c.job_name)
        .where(
            schedule_fires.c.state == FireState.RUNNING.value,
            schedule_fires.c.updated_at < before,
            jobs.c.status == "queued",
        )
        .limit(limit)
    )
    return [fire_from(row) for row in conn.execute(query)]


def windows_done(conn: Connection, schedule_id: int, first_start: int, last_start: int) -> int:
    """How many of a schedule's windows starting in [first, last] completed or were skipped."""
    query = (
        select(func.count())
        .select_from(schedule_fires)
        .where(
            schedule_fires.c.schedule_id == schedule_id,
            schedule_fires.c.fire_time >= first_start,
            schedule_fires.c.fire_time <= last_start,
            schedule_fires.c.state.in_(SATISFIED),
        )
    )
    return int(conn.execute(query).scalar_one())


def recent_fires(store: Store, schedule_id: int, *, limit: int = 10) -> list[Fire]:
    query = (
        select(schedule_fires)
        .where(schedule_fires.c.schedule_id == schedule_id)
        .order_by(schedule_fires.c.fire_time.desc(), schedule_fires.c.id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [fire_from(row) for row in conn.execute(query)]


def finished_since(conn: Connection, schedule_id: int, since: int, *, limit: int = 1000) -> list[Fire]:
    query = (
        select(schedule_fires)
        .where(schedule_fires.c.schedule_id == schedule_id, schedule_fires.c.finished_at >= since)
        .order_by(schedule_fires.c.finished_at)
        .limit(limit)
    )
    return [fire_from(row) for row in conn.execute(query)]


def fire_from(row: Any) -> Fire:
    return Fire(
        id=row.id,
        schedule_id=row.schedule_id,
        key=row.fire_key,
        time=row.fire_time,
        kind=row.kind,
        state=FireState(row.state),
        attempt=row.attempt,
        job_name=row.job_name,
        values=json.loads(row.trigger_values),
        window_end=row.window_end,
        not_before=row.not_before,
        lease_until=row.lease_until,
        owner=row.owner,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )
