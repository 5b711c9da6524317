"""Schedules as rows: create or replace, read, enable, disable, delete, and the due index.

A schedule's ``next_fire_at`` is when the clock next makes it due (NULL for triggers
the clock never fires). A tick reads only rows whose time has come, through the
``(enabled, next_fire_at)`` index, and moves a row forward with a compare-and-set on
the value it read, so of several schedulers exactly one handles each due batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from keel.clock import now_ms
from keel.errors import NotFound
from keel.store import Store
from keel.store.schema import schedules


@dataclass(frozen=True)
class Schedule:
    """A stored schedule."""

    id: int
    name: str
    trigger_type: str
    trigger: dict[str, Any]
    create_job: dict[str, Any]
    base_dir: str
    catchup: str
    enabled: bool
    next_fire_at: int | None
    created_at: int
    updated_at: int
    source_file: str | None = None
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    cursor: dict[str, Any] | None = None
    secret: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the secret is never included)."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "tags": self.tags,
            "type": self.trigger_type,
            "trigger": self.trigger,
            "catchup": self.catchup,
            "enabled": self.enabled,
            "next_fire_at": self.next_fire_at,
            "source_file": self.source_file,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def save_schedule(store: Store, values: dict[str, Any]) -> tuple[Schedule, bool]:
    """Insert the schedule, or replace the definition of the one with its name (its fires stay).

    Returns the stored schedule and whether it was new.
    """
    now = now_ms()
    row = {
        **values,
        "trigger": json.dumps(values["trigger"]),
        "create_job": json.dumps(values["create_job"], default=str),
        "tags": json.dumps(values.get("tags") or {}),
        "enabled": int(values.get("enabled", True)),
        "updated_at": now,
    }
    with store.write() as conn:
        existing = conn.execute(select(schedules.c.id).where(schedules.c.name == values["name"])).first()
        if existing is None:
            conn.execute(insert(schedules).values(**row, created_at=now))
        else:
            conn.execute(update(schedules).where(schedules.c.id == existing.id).values(**row, cursor=None))
    return get_schedule(store, values["name"]), existing is None


def get_schedule(store: Store, name: str) -> Schedule:
    with store.read() as conn:
        found = schedule_named(conn, name)
    if found is None:
        raise NotFound(f"no schedule named {name!r}", hint="see `keel schedule list`")
    return found


def schedule_named(conn: Connection, name: str) -> Schedule | None:
    row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
    return None if row is None else schedule_from(row)


def schedule_by_id(conn: Connection, schedule_id: int) -> Schedule | None:
    row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    return None if row is None else schedule_from(row)


def list_schedules(store: Store, *, trigger_type: str | None = None) -> list[Schedule]:
    query = select(schedules).order_by(schedules.c.name)
    if trigger_type is not None:
        query = query.where(schedules.c.trigger_type == trigger_type)
    with store.read() as conn:
        return [schedule_from(row) for row in conn.execute(query)]


def enabled_of_types(conn: Connection, types: tuple[str, ...]) -> list[Schedule]:
    query = select(schedules).where(schedules.c.enabled == 1, schedules.c.trigger_type.in_(types))
    return [schedule_from(row) for row in conn.execute(query)]


def set_enabled(store: Store, name: str, enabled: bool, next_fire_at: int | None) -> None:
    with store.write() as conn:
        gone = conn.execute(
            update(schedules)
            .where(schedules.c.name == name)
            .values(enabled=int(enabled), next_fire_at=next_fire_at, updated_at=now_ms())
        )
    if gone.rowcount == 0:
        raise NotFound(f"no schedule named {name!r}", hint="see `keel schedule list`")


def delete_schedule(store: Store, name: str) -> None:
    """Forget a schedule and its fire records; the jobs it created stay."""
    with store.write() as conn:
        gone = conn.execute(delete(schedules).where(schedules.c.name == name))
    if gone.rowcount == 0:
        raise NotFound(f"no schedule named {name!r}", hint="see `keel schedule list`")


def due_schedules(conn: Connection, now: int, *, limit: int) -> list[Schedule]:
    """Enabled schedules the clock has made due, earliest first (read through the index)."""
    query = (
        select(schedules)
        .where(schedules.c.enabled == 1, schedules.c.next_fire_at <= now)
        .order_by(schedules.c.next_fire_at)
        .limit(limit)
    )
    return [schedule_from(row) for row in conn.execute(query)]


def earliest_due(store: Store) -> int | None:
    """When the clock next makes any enabled schedule due."""
    with store.read() as conn:
        value = conn.execute(
            select(func.min(schedules.c.next_fire_at)).where(
                schedules.c.enabled == 1, schedules.c.next_fire_at.is_not(None)
            )
        ).scalar()
    return None if value is None else int(value)


def advance(conn: Connection, schedule: Schedule, next_fire_at: int | None) -> bool:
    """Move the schedule's next fire time on, if nobody else did since it was read."""
    moved = conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule.id, schedules.c.next_fire_at == schedule.next_fire_at)
        .values(next_fire_at=next_fire_at)
    )
    return moved.rowcount == 1


def move_cursor(conn: Connection, schedule: Schedule, cursor: dict[str, Any]) -> bool:
    """Compare-and-set of the event-source cursor (storage baseline, completion watermark)."""
    old = None if schedule.cursor is None else json.dumps(schedule.cursor, sort_keys=True)
    condition = schedules.c.cursor.is_(None) if old is None else schedules.c.cursor == old
    moved = conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule.id, condition)
        .values(cursor=json.dumps(cursor, sort_keys=True))
    )
    return moved.rowcount == 1


def schedule_from(row: Any) -> Schedule:
    return Schedule(
        id=row.id,
        name=row.name,
        trigger_type=row.trigger_type,
        trigger=json.loads(row.trigger),
        create_job=json.loads(row.create_job),
        base_dir=row.base_dir,
        catchup=row.catchup,
        enabled=bool(row.enabled),
        next_fire_at=row.next_fire_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        source_file=row.source_file,
        display_name=row.display_name,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        cursor=json.loads(row.cursor) if row.cursor else None,
        secret=row.secret,
    )
