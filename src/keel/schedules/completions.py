"""Job completions another schedule follows: the fires of a schedule, or runs of a named pipeline.

``endings_since`` reads what ended at or after a cursor; the fire key is the job's
name, so reading an ending twice (cursors are inclusive) never fires twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from keel.schedules import fires, records
from keel.store.schema import jobs

_TERMINAL = ("completed", "failed", "canceled")


def endings_since(
    conn: Connection, trigger: Mapping[str, Any], since: int
) -> list[tuple[str, str, int, str]]:
    """(job name, status, ended at, source name) of followed jobs that ended at or after ``since``."""
    if trigger.get("schedule"):
        followed = records.schedule_named(conn, trigger["schedule"])
        if followed is None:
            return []
        return [
            (fire.job_name, fire.state.value, fire.finished_at, followed.name)
            for fire in fires.finished_since(conn, followed.id, since)
            if fire.job_name is not None and fire.finished_at is not None and fire.state.value in _TERMINAL
        ]
    query = (
        select(jobs.c.name, jobs.c.status, jobs.c.end_time)
        .where(
            jobs.c.parent_id.is_(None),
            jobs.c.type == "pipeline",
            jobs.c.display_name == trigger["pipeline"],
            jobs.c.status.in_(_TERMINAL),
            jobs.c.end_time >= since,
        )
        .order_by(jobs.c.end_time)
        .limit(1000)
    )
    return [(row.name, row.status, int(row.end_time), trigger["pipeline"]) for row in conn.execute(query)]
