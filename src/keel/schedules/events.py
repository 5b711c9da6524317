"""Events from outside: ``POST /api/schedules/{name}/events``, signed with the schedule's secret.

A sender signs each request with HMAC-SHA256 over ``"<timestamp>.<body>"`` using the
secret ``keel schedule create`` printed (or the ``${VAR}`` the YAML named)::

    X-Keel-Timestamp: 1714550400
    X-Keel-Signature: sha256=<hex digest>

A request more than five minutes old or new, or whose signature does not match, is
refused (401) before its body is read as JSON, and nothing fires. The body is one
event or a list, in Event Grid's shape (``id``, ``subject``, ``eventType``, ``data``)
or CloudEvents' (``id``, ``subject``, ``type``, ``data``). Each event that passes the
filters fires once per ``id``: a sender's retry of the same event is recognised and
answered with the job it already started.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from keel.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from keel.schedules import fires, records
from keel.schedules.fires import FireState, NewFire
from keel.schedules.jobs import base_values, resolve
from keel.schedules.records import Schedule
from keel.workspace import Workspace

SIGNATURE_HEADER = "x-keel-signature"
TIMESTAMP_HEADER = "x-keel-timestamp"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1 << 20
MAX_EVENTS = 100


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers a sender adds (what a client library of Keel's would do)."""
    moment = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(moment), SIGNATURE_HEADER: sign(secret, moment, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
    """Raise :class:`Unauthenticated` unless the request was signed with ``secret`` recently."""
    lowered = {key.lower(): value for key, value in headers.items()}
    stamp, signature = lowered.get(TIMESTAMP_HEADER, ""), lowered.get(SIGNATURE_HEADER, "")
    if not stamp or not signature:
        raise Unauthenticated(f"the event is not signed (send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER})")
    try:
        moment = int(stamp)
    except ValueError:
        raise Unauthenticated(f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    if abs((time.time() if now is None else now) - moment) > TOLERANCE_SECONDS:
        raise Unauthenticated("the event's timestamp is more than five minutes from now", hint="check clocks")
    if not hmac.compare_digest(sign(secret, moment, body), signature.strip()):
        raise Unauthenticated("the event's signature does not match this schedule's secret")


def schedule_secret(workspace: Workspace, schedule: Schedule) -> str:
    from keel.data import secrets

    opened = secrets.unseal(schedule.secret, secrets.workspace_key(workspace.config.root))
    if "secret" not in opened:
        raise Conflict(f"schedule {schedule.name!r} has no event secret; create it again")
    return opened["secret"]


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events in a request body: one object or a list of them, each with an ``id``."""
    try:
        loaded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the event body is not JSON") from None
    items = loaded if isinstance(loaded, list) else [loaded]
    if not items or len(items) > MAX_EVENTS:
        raise InvalidInput(f"expected between 1 and {MAX_EVENTS} events, got {len(items)}")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str | int) or item.get("id") == "":
            raise InvalidInput(f"event {index}: expected an object with an 'id'")
        events.append(
            {
                "id": str(item["id"]),
                "subject": str(item.get("subject") or ""),
                "event_type": str(item.get("eventType") or item.get("type") or ""),
                "data": item.get("data"),
            }
        )
    return events


def passes(trigger: Mapping[str, Any], event: Mapping[str, Any]) -> str | None:
    """Why the event is filtered out, or None when it passes."""
    subject = event["subject"]
    if trigger.get("subject_begins_with") and not subject.startswith(trigger["subject_begins_with"]):
        return "subject does not begin with " + repr(trigger["subject_begins_with"])
    if trigger.get("subject_ends_with") and not subject.endswith(trigger["subject_ends_with"]):
        return "subject does not end with " + repr(trigger["subject_ends_with"])
    types = trigger.get("event_types")
    if types and event["event_type"] not in types:
        return f"event type {event['event_type']!r} is not one of {types}"
    return None


def receive_events(
    workspace: Workspace, name: str, body: bytes, headers: Mapping[str, str], *, runner_limit: int
) -> dict[str, Any]:
    """Check, filter and fire a request's events; returns what happened to each."""
    from keel.schedules.launch import launch_ready
    from keel.schedules.progress import ScheduleCache, submit_claimed

    schedule = records.get_schedule(workspace.store, name)
    if schedule.trigger_type != "event":
        raise NotFound(f"schedule {name!r} is a {schedule.trigger_type} schedule; it takes no events")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"the event body is over {MAX_BODY_BYTES} bytes")
    verify(schedule_secret(workspace, schedule), headers, body)
    if not schedule.enabled:
        raise Conflict(f"schedule {name!r} is disabled", hint=f"keel schedule enable {name}")
    events = parse_events(body)
    now = int(time.time() * 1000)
    wanted: list[NewFire] = []
    ignored = []
    for event in events:
        reason = passes(schedule.trigger, event)
        if reason is not None:
            ignored.append({"id": event["id"], "reason": reason})
            continue
        values = {**base_values(schedule.name, "event", now), **event}
        resolve(workspace, schedule.create_job, values, job_name="event_check")  # a bad payload: 400, no fire
        wanted.append(NewFire(_event_key(event["id"]), now, "event", values))
    owner = fires.this_process()
    with workspace.store.write() as conn:
        claimed = fires.claim(conn, schedule.id, wanted, owner=owner)
    submit_claimed(workspace, claimed, ScheduleCache(workspace), owner=owner)
    launch_ready(workspace, limit=runner_limit)
    return {"fired": _outcomes(workspace, schedule, wanted, {f.key for f in claimed}), "ignored": ignored}


def _event_key(event_id: str) -> str:
    key = f"event:{event_id}"
    return key if len(key) <= 500 else f"event:sha256:{hashlib.sha256(event_id.encode()).hexdigest()}"


def _outcomes(
    workspace: Workspace, schedule: Schedule, wanted: list[NewFire], new: set[str]
) -> list[dict[str, Any]]:
    found = []
    with workspace.store.read() as conn:
        for fire in wanted:
            row = fires.fire_by_key(conn, schedule.id, fire.key)
            if row is None:
                continue
            item = {
                "id": fire.values["id"],
                "job": row.job_name,
                "state": row.state.value,
                "duplicate": fire.key not in new,
            }
            if row.state == FireState.ERROR:
                item["error"] = row.error
            found.append(item)
    return found
