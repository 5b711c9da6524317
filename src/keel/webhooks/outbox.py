"""The webhook outbox: events are rows first, deliveries second, so a crash loses none.

``enqueue`` writes one row per subscribed endpoint inside the caller's transaction
(the same one that records the change the event reports, where the caller can).
``deliver_due`` claims due rows with a lease (so two senders never send one row at
once), sends each, and records the outcome: delivered, a retry after an
exponentially growing delay, or failed once the attempts are used up. Delivery is
at least once: receivers de-duplicate on the ``Keel-Delivery`` header.

Long-running processes (``keel server``, ``keel up``) call :func:`deliver_due` from a
background thread (``keel.server.housekeeping``); a runner calls :func:`flush` before
it exits, so its own events go out without one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from keel.clock import now_ms
from keel.errors import KeelError
from keel.store.schema import webhook_deliveries
from keel.webhooks.config import WebhookSettings
from keel.webhooks.egress import check_destination, describe
from keel.webhooks.endpoints import endpoint_for_sending, settings_of, subscribers
from keel.webhooks.send import post
from keel.workspace import Workspace

_log = logging.getLogger(__name__)
LEASE_MS = 120_000
_BATCH = 50
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: int
    last_error: str | None
    created_at: int
    delivered_at: int | None


def enqueue(conn: Connection, settings: WebhookSettings, event_type: str, data: Mapping[str, Any]) -> int:
    """Queue ``event_type`` for every endpoint that wants it; returns how many rows were written."""
    names = subscribers(conn, settings, event_type)
    if not names:
        return 0
    created = now_ms()
    event_id = uuid.uuid4().hex
    payload = json.dumps({"id": event_id, "type": event_type, "created_at": created, "data": data})
    conn.execute(
        insert(webhook_deliveries),
        [
            {
                "endpoint": name,
                "event_id": event_id,
                "event_type": event_type,
                "payload": payload,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": created,
                "created_at": created,
            }
            for name in names
        ],
    )
    return len(names)


def emit(workspace: Workspace, event_type: str, data: Mapping[str, Any]) -> int:
    """``enqueue`` in a transaction of its own (none at all when nobody subscribed)."""
    settings = settings_of(workspace)
    if not subscribed(workspace, event_type, settings):
        return 0
    with workspace.store.write() as conn:
        return enqueue(conn, settings, event_type, data)


def subscribed(workspace: Workspace, event_type: str, settings: WebhookSettings | None = None) -> bool:
    """Whether any endpoint wants ``event_type`` (a read; callers skip building the event if not)."""
    with workspace.store.read() as conn:
        return bool(subscribers(conn, settings or settings_of(workspace), event_type))


def deliver_due(workspace: Workspace, *, now: int | None = None) -> int:
    """Send every delivery that is due now; returns how many were attempted."""
    settings = settings_of(workspace)
    attempted = 0
    while True:
        claimed = _claim(workspace, now if now is not None else now_ms())
        for row in claimed:
            _attempt(workspace, settings, row)
        attempted += len(claimed)
        if len(claimed) < _BATCH:
            return attempted


def flush(workspace: Workspace, *, within_seconds: float) -> int:
    """Deliver what is due, waiting for retries that fall due within ``within_seconds``;
    returns how many deliveries are still pending after that (0 at once when none are)."""
    deadline = time.monotonic() + within_seconds
    while True:
        upcoming = _next_due(workspace)
        if upcoming is None:
            return 0
        wait = (upcoming - now_ms()) / 1000
        if wait > 0:
            if time.monotonic() + wait > deadline:
                return pending_count(workspace)
            time.sleep(wait)
        deliver_due(workspace)


def pending_count(workspace: Workspace) -> int:
    with workspace.store.read() as conn:
        query = select(func.count()).where(webhook_deliveries.c.status == PENDING)
        return int(conn.execute(query).scalar_one())


def list_deliveries(workspace: Workspace, *, limit: int = 50, status: str | None = None) -> list[Delivery]:
    query = select(webhook_deliveries).order_by(webhook_deliveries.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    with workspace.store.read() as conn:
        rows = conn.execute(query).all()
    return [
        Delivery(
            r.id,
            r.endpoint,
            r.event_id,
            r.event_type,
            r.status,
            r.attempts,
            r.next_attempt_at,
            r.last_error,
            r.created_at,
            r.delivered_at,
        )
        for r in rows
    ]


def _claim(workspace: Workspace, now: int) -> list[Any]:
    table = webhook_deliveries
    due = (
        select(table.c.id)
        .where(
            table.c.status == PENDING,
            table.c.next_attempt_at <= now,
            or_(table.c.lease_until.is_(None), table.c.lease_until < now),
        )
        .order_by(table.c.next_attempt_at)
        .limit(_BATCH)
    )
    claim = (
        update(table)
        .where(
            table.c.id.in_(due.scalar_subquery()),
            and_(table.c.status == PENDING, or_(table.c.lease_until.is_(None), table.c.lease_until < now)),
        )
        .values(lease_until=now + LEASE_MS)
        .returning(
            table.c.id,
            table.c.endpoint,
            table.c.event_id,
            table.c.event_type,
            table.c.payload,
            table.c.attempts,
        )
    )
    with workspace.store.write() as conn:
        return list(conn.execute(claim).all())


def _attempt(workspace: Workspace, settings: WebhookSettings, row: Any) -> None:
    attempts = row.attempts + 1
    try:
        endpoint = endpoint_for_sending(workspace, settings, row.endpoint)
        if endpoint is None:
            _record(workspace, row.id, attempts, FAILED, "the endpoint was removed")
            return
        destination = check_destination(endpoint.url, settings)
    except KeelError as exc:  # refused by policy, or its secret cannot be read: no retry helps
        _record(workspace, row.id, attempts, FAILED, describe(exc))
        _log.warning("webhook %s: delivery %s refused: %s", row.endpoint, row.event_id, describe(exc))
        return
    sent = post(
        destination,
        row.payload.encode(),
        secret=endpoint.secret,
        event_type=row.event_type,
        delivery_id=row.event_id,
        timestamp=int(time.time()),
        timeout=settings.timeout_seconds,
    )
    if sent.ok:
        _record(workspace, row.id, attempts, DELIVERED, None)
    elif attempts >= settings.retry.max_attempts:
        _record(workspace, row.id, attempts, FAILED, f"{destination.origin}: {sent.detail}")
    else:
        retry_at = now_ms() + int(settings.retry.delay_after(attempts) * 1000)
        _record(
            workspace, row.id, attempts, PENDING, f"{destination.origin}: {sent.detail}", retry_at=retry_at
        )


def _record(
    workspace: Workspace,
    row_id: int,
    attempts: int,
    status: str,
    error: str | None,
    *,
    retry_at: int | None = None,
) -> None:
    values: dict[str, Any] = {
        "attempts": attempts,
        "status": status,
        "last_error": error,
        "lease_until": None,
    }
    if status == DELIVERED:
        values["delivered_at"] = now_ms()
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    with workspace.store.write() as conn:
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == row_id).values(**values))


def _next_due(workspace: Workspace) -> int | None:
    """When the next pending delivery may be tried (after its retry time and any lease)."""
    with workspace.store.read() as conn:
        found = conn.execute(_NEXT_DUE).scalar()
    return None if found is None else int(found)


# Built once: compiling it costs more than running it, and every run asks at its end.
_READY_AT = case(
    (
        and_(
            webhook_deliveries.c.lease_until.is_not(None),
            webhook_deliveries.c.lease_until > webhook_deliveries.c.next_attempt_at,
        ),
        webhook_deliveries.c.lease_until,
    ),
    else_=webhook_deliveries.c.next_attempt_at,
)
_NEXT_DUE = select(func.min(_READY_AT)).where(webhook_deliveries.c.status == PENDING)
