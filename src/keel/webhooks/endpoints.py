"""Webhook endpoints registered with ``keel webhook create``, beside those keel.yaml names.

A registered endpoint's secret is sealed with the workspace key (or kept as a
``${VAR}`` reference to the environment), like a datastore's credentials; it is
shown once, when Keel generates it, and never again.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store.schema import webhook_endpoints
from keel.webhooks.config import Endpoint, WebhookSettings, check_event_patterns, webhook_settings
from keel.webhooks.egress import check_destination
from keel.workspace import Workspace


@dataclass(frozen=True)
class EndpointInfo:
    """An endpoint as listed: never its secret."""

    name: str
    url: str
    events: tuple[str, ...]
    source: str  # "keel.yaml" or "store"
    created_at: int | None = None


def settings_of(workspace: Workspace) -> WebhookSettings:
    return webhook_settings(workspace.config.sections, workspace.config.source)


def create_endpoint(
    workspace: Workspace, name: str, url: str, *, secret: str | None = None, events: list[str] | None = None
) -> tuple[EndpointInfo, str | None]:
    """Register an endpoint; returns it and the secret Keel generated (None if one was given)."""
    from keel.data.secrets import seal, workspace_key

    settings = settings_of(workspace)
    patterns = tuple(events or ["*"])
    try:
        endpoint = Endpoint(name=name, url=url, secret=secret or "unset", events=patterns)
        check_event_patterns(patterns)
    except ValueError as exc:
        raise InvalidInput(f"webhook {name!r}: {str(exc).splitlines()[-1].strip()}") from None
    if settings.endpoint(name) is not None:
        raise Conflict(f"keel.yaml already names a webhook {name!r}")
    check_destination(endpoint.url, settings)  # refuse a host the workspace does not allow, now
    generated = None if secret else "whsec_" + secrets.token_urlsafe(32)
    sealed = seal({"secret": secret or generated or ""}, workspace_key(workspace.config.root))
    created = now_ms()
    try:
        with workspace.store.write() as conn:
            conn.execute(
                insert(webhook_endpoints).values(
                    name=name, url=url, events=json.dumps(list(patterns)), secret=sealed, created_at=created
                )
            )
    except IntegrityError:
        raise Conflict(f"a webhook named {name!r} already exists", hint="see `keel webhook list`") from None
    return EndpointInfo(name, url, patterns, "store", created), generated


def delete_endpoint(workspace: Workspace, name: str) -> None:
    with workspace.store.write() as conn:
        gone = conn.execute(delete(webhook_endpoints).where(webhook_endpoints.c.name == name)).rowcount
    if not gone:
        hint = "it is named in keel.yaml; remove it there" if settings_of(workspace).endpoint(name) else None
        raise NotFound(f"no registered webhook named {name!r}", hint=hint or "see `keel webhook list`")


def list_endpoints(workspace: Workspace) -> list[EndpointInfo]:
    configured = [
        EndpointInfo(e.name, e.url, e.events, "keel.yaml") for e in settings_of(workspace).endpoints
    ]
    with workspace.store.read() as conn:
        rows = conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.name)).all()
    stored = [
        EndpointInfo(row.name, row.url, tuple(json.loads(row.events)), "store", row.created_at)
        for row in rows
    ]
    return configured + stored


def subscribers(conn: Connection, settings: WebhookSettings, event_type: str) -> list[str]:
    """The names of the endpoints that want ``event_type``, read in the caller's transaction."""
    names = [endpoint.name for endpoint in settings.endpoints if endpoint.wants(event_type)]
    for row in conn.execute(_REGISTERED):
        probe = Endpoint(
            name=row.name, url="http://localhost", secret="-", events=tuple(json.loads(row.events))
        )
        if probe.wants(event_type):
            names.append(row.name)
    return names


_REGISTERED = select(webhook_endpoints.c.name, webhook_endpoints.c.events)


def endpoint_for_sending(workspace: Workspace, settings: WebhookSettings, name: str) -> Endpoint | None:
    """The endpoint named ``name`` with its secret in clear (None if it was removed)."""
    from keel.data.secrets import unseal, workspace_key

    configured = settings.endpoint(name)
    if configured is not None:
        return configured
    with workspace.store.read() as conn:
        row = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.name == name)).first()
    if row is None:
        return None
    secret = unseal(row.secret, workspace_key(workspace.config.root))["secret"]
    return Endpoint(name=row.name, url=row.url, secret=secret, events=tuple(json.loads(row.events)))
