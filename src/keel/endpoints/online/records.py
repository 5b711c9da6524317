"""Online endpoints and deployments as recorded: create, read, update, delete.

The store holds each definition; a running ``keel up`` polls the tables and brings
its workers in line, and writes back what it sees (``state``). So an endpoint
outlives any gateway, and the CLI works whether one is running or not.

Traffic follows Azure's rules: shares are 0 to 100, the live shares add up to 0 or
100, every share names a deployment of the endpoint, at most one deployment takes
mirrored traffic (at most 50 %), and a deployment cannot take both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.endpoints.online import auth
from keel.endpoints.online.specs import EndpointSpec
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store.schema import online_deployments, online_endpoints
from keel.tracking.validation import text_values
from keel.workspace import Workspace

MAX_MIRROR_PERCENT = 50


@dataclass(frozen=True)
class Endpoint:
    """An online endpoint as recorded (its credentials stay sealed here)."""

    id: int
    name: str
    auth_mode: str
    traffic: dict[str, int]
    mirror_traffic: dict[str, int]
    revision: int
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    sealed_credentials: str = field(default="", repr=False)
    created_at: int = 0
    updated_at: int = 0

    def describe(self, deployments: list[Deployment] | None = None) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "auth_mode": self.auth_mode,
            "description": self.description,
            "tags": self.tags,
            "traffic": self.traffic,
            "mirror_traffic": self.mirror_traffic,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if deployments is not None:
            described["deployments"] = [d.name for d in deployments]
        return described


@dataclass(frozen=True)
class Deployment:
    """A deployment as recorded: its resolved settings, and what the gateway last reported."""

    id: int
    endpoint: str
    name: str
    settings: dict[str, Any]
    revision: int
    state: str
    state_reason: str | None = None
    served_revision: int | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0

    @property
    def model_reference(self) -> str:
        model = self.settings["model"]
        return f"azureml:{model['name']}:{model['version']}"

    def describe(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "name": self.name,
            "endpoint_name": self.endpoint,
            "description": self.description,
            "tags": self.tags,
            "model": self.model_reference,
            "model_type": settings["model"]["type"],
            "code_configuration": settings.get("code"),
            "instance_count": settings["instance_count"],
            "request_settings": settings["request"],
            "data_collector": settings.get("data_collector"),
            "environment": settings.get("environment"),
            "state": self.state,
            "state_reason": self.state_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


# -- endpoints -----------------------------------------------------------------------------


def create_endpoint(workspace: Workspace, spec: EndpointSpec) -> Endpoint:
    """Record an endpoint with fresh keys; traffic comes later, once deployments exist."""
    if spec.traffic and any(share for share in spec.traffic.values()):
        raise InvalidInput(
            f"endpoint {spec.name!r}: traffic can be set only once its deployments exist",
            hint=f'create its deployments, then `keel online-endpoint update -n {spec.name} --traffic "…"`',
        )
    if spec.mirror_traffic and any(share for share in spec.mirror_traffic.values()):
        raise InvalidInput(
            f"endpoint {spec.name!r}: mirror traffic can be set only once its deployments exist"
        )
    now = now_ms()
    row = {
        "name": spec.name,
        "description": spec.description,
        "tags": json.dumps(text_values(spec.tags)),
        "auth_mode": spec.auth_mode,
        "credentials": auth.seal(auth.new_credentials(), workspace.config.root),
        "traffic": "{}",
        "mirror_traffic": "{}",
        "revision": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with workspace.store.write() as conn:
            conn.execute(insert(online_endpoints).values(**row))
    except IntegrityError:
        raise Conflict(
            f"an online endpoint named {spec.name!r} already exists",
            hint="update it with `keel online-endpoint update`, or delete it first",
        ) from None
    return get_endpoint(workspace, spec.name)


def get_endpoint(workspace: Workspace, name: str) -> Endpoint:
    with workspace.store.read() as conn:
        row = conn.execute(select(online_endpoints).where(online_endpoints.c.name == name)).first()
    if row is None:
        raise NotFound(f"no online endpoint named {name!r}", hint="`keel online-endpoint list` shows them")
    return endpoint_from_row(row)


def list_endpoints(workspace: Workspace) -> list[Endpoint]:
    with workspace.store.read() as conn:
        rows = conn.execute(select(online_endpoints).order_by(online_endpoints.c.name)).all()
    return [endpoint_from_row(row) for row in rows]


def update_endpoint(
    workspace: Workspace,
    name: str,
    *,
    traffic: dict[str, int] | None = None,
    mirror_traffic: dict[str, int] | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> Endpoint:
    """Change traffic, mirroring, description or tags; traffic is checked against the deployments."""
    with workspace.store.write() as conn:
        row = conn.execute(select(online_endpoints).where(online_endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"no online endpoint named {name!r}")
        endpoint = endpoint_from_row(row)
        deployments = _deployment_names(conn, endpoint.id)
        # Azure's ``--traffic`` names the whole split: deployments it leaves out get 0.
        live = endpoint.traffic if traffic is None else dict(traffic)
        mirror = endpoint.mirror_traffic if mirror_traffic is None else dict(mirror_traffic)
        check_traffic(name, live, mirror, deployments)
        values: dict[str, Any] = {
            "traffic": json.dumps(_nonzero(live)),
            "mirror_traffic": json.dumps(_nonzero(mirror)),
            "revision": endpoint.revision + 1,
            "updated_at": now_ms(),
        }
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = json.dumps({**endpoint.tags, **tags})
        conn.execute(update(online_endpoints).where(online_endpoints.c.id == endpoint.id).values(**values))
    return get_endpoint(workspace, name)


def check_traffic(endpoint: str, live: dict[str, int], mirror: dict[str, int], deployments: set[str]) -> None:
    """Azure's traffic rules; each failure names what is wrong."""
    for label, shares in (("traffic", live), ("mirror traffic", mirror)):
        for deployment, share in shares.items():
            if deployment not in deployments:
                known = ", ".join(sorted(deployments)) or "none yet"
                raise InvalidInput(
                    f"endpoint {endpoint!r}: {label} names {deployment!r}, which is not one of its "
                    f"deployments ({known})"
                )
            if not 0 <= share <= 100:
                raise InvalidInput(
                    f"endpoint {endpoint!r}: {label} for {deployment!r} is {share}; give 0 to 100"
                )
    total = sum(live.values())
    if total not in (0, 100):
        raise InvalidInput(
            f"endpoint {endpoint!r}: traffic adds up to {total}; the shares must add up to 100 (or all be 0)"
        )
    mirrored = _nonzero(mirror)
    if len(mirrored) > 1:
        raise InvalidInput(f"endpoint {endpoint!r}: mirror traffic can go to one deployment only")
    for deployment, share in mirrored.items():
        if share > MAX_MIRROR_PERCENT:
            raise InvalidInput(
                f"endpoint {endpoint!r}: mirror traffic to {deployment!r} is {share}%; at most "
                f"{MAX_MIRROR_PERCENT}% can be mirrored"
            )
        if live.get(deployment):
            raise InvalidInput(
                f"endpoint {endpoint!r}: {deployment!r} takes live traffic; it cannot take mirrored traffic"
            )


def delete_endpoint(workspace: Workspace, name: str) -> None:
    """Forget an endpoint and its deployments; a running gateway stops their workers."""
    endpoint = get_endpoint(workspace, name)
    with workspace.store.write() as conn:
        conn.execute(delete(online_deployments).where(online_deployments.c.endpoint_id == endpoint.id))
        conn.execute(delete(online_endpoints).where(online_endpoints.c.id == endpoint.id))


def credentials(workspace: Workspace, name: str) -> dict[str, Any]:
    """What ``get-credentials`` prints: the keys, or a fresh token, in Azure's field names."""
    endpoint = get_endpoint(workspace, name)
    opened = auth.unseal(endpoint.sealed_credentials, workspace.config.root)
    if endpoint.auth_mode == "key":
        return {"primaryKey": opened.primary, "secondaryKey": opened.secondary}
    token, expires = auth.issue_token(endpoint.name, opened)
    refresh = expires - auth.TOKEN_LIFETIME_SECONDS // 2
    return {
        "accessToken": token,
        "tokenType": "Bearer",
        "expiryTimeUtc": expires,
        "refreshAfterTimeUtc": refresh,
    }


def bearer_credential(workspace: Workspace, name: str) -> str:
    """A credential the CLI's ``invoke`` can send: the primary key, or a fresh token."""
    found = credentials(workspace, name)
    return str(found.get("primaryKey") or found["accessToken"])


def regenerate_keys(workspace: Workspace, name: str, key_type: str) -> None:
    """Replace one key; the other keeps working, so clients can move over without an outage."""
    if key_type not in auth.KEY_NAMES:
        raise InvalidInput(f"--key-type is primary or secondary, not {key_type!r}")
    with workspace.store.write() as conn:
        row = conn.execute(select(online_endpoints).where(online_endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"no online endpoint named {name!r}")
        if row.auth_mode != "key":
            raise Conflict(
                f"endpoint {name!r} uses auth_mode {row.auth_mode}; it has no keys to regenerate",
                hint="tokens expire on their own; `get-credentials` issues a fresh one",
            )
        opened = auth.unseal(row.credentials, workspace.config.root).replaced(key_type)
        conn.execute(
            update(online_endpoints)
            .where(online_endpoints.c.id == row.id)
            .values(
                credentials=auth.seal(opened, workspace.config.root),
                revision=row.revision + 1,
                updated_at=now_ms(),
            )
        )


def endpoint_from_row(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        name=row.name,
        auth_mode=row.auth_mode,
        traffic=json.loads(row.traffic),
        mirror_traffic=json.loads(row.mirror_traffic),
        revision=row.revision,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        sealed_credentials=row.credentials,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _deployment_names(conn: Connection, endpoint_id: int) -> set[str]:
    query = select(online_deployments.c.name).where(online_deployments.c.endpoint_id == endpoint_id)
    return {row.name for row in conn.execute(query)}


def _nonzero(shares: dict[str, int]) -> dict[str, int]:
    return {name: share for name, share in shares.items() if share}


# -- deployments ---------------------------------------------------------------------------


def insert_deployment(
    workspace: Workspace,
    endpoint: str,
    name: str,
    settings: dict[str, Any],
    *,
    description: str | None,
    tags: dict[str, Any] | None,
    all_traffic: bool = False,
) -> Deployment:
    """Record a new deployment (settings already resolved); with ``all_traffic`` it takes 100 %."""
    now = now_ms()
    with workspace.store.write() as conn:
        found = get_endpoint_in(conn, endpoint)
        row = {
            "endpoint_id": found.id,
            "name": name,
            "description": description,
            "tags": json.dumps(text_values(tags)),
            "model_name": settings["model"]["name"],
            "model_version": settings["model"]["version"],
            "spec": json.dumps(settings),
            "revision": 1,
            "state": "pending",
            "created_at": now,
            "updated_at": now,
        }
        try:
            conn.execute(insert(online_deployments).values(**row))
        except IntegrityError:
            raise Conflict(
                f"endpoint {endpoint!r} already has a deployment named {name!r}",
                hint="change it with `keel online-deployment update -f`, or delete it first",
            ) from None
        if all_traffic:
            _set_traffic(conn, found, {name: 100}, found.mirror_traffic)
    return get_deployment(workspace, endpoint, name)


def replace_deployment(
    workspace: Workspace,
    endpoint: str,
    name: str,
    settings: dict[str, Any],
    *,
    description: str | None,
    tags: dict[str, Any] | None,
) -> Deployment:
    """New settings for a deployment; the gateway starts new workers, then retires the old ones."""
    with workspace.store.write() as conn:
        found = get_endpoint_in(conn, endpoint)
        row = _deployment_row(conn, found.id, endpoint, name)
        values: dict[str, Any] = {
            "spec": json.dumps(settings),
            "model_name": settings["model"]["name"],
            "model_version": settings["model"]["version"],
            "revision": row.revision + 1,
            "state": "pending",
            "state_reason": None,
            "updated_at": now_ms(),
        }
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = json.dumps(text_values(tags))
        conn.execute(update(online_deployments).where(online_deployments.c.id == row.id).values(**values))
    return get_deployment(workspace, endpoint, name)


def get_endpoint_in(conn: Connection, name: str) -> Endpoint:
    row = conn.execute(select(online_endpoints).where(online_endpoints.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"no online endpoint named {name!r}", hint="create it with `keel online-endpoint create`"
        )
    return endpoint_from_row(row)


def _set_traffic(conn: Connection, endpoint: Endpoint, live: dict[str, int], mirror: dict[str, int]) -> None:
    check_traffic(endpoint.name, live, mirror, _deployment_names(conn, endpoint.id))
    conn.execute(
        update(online_endpoints)
        .where(online_endpoints.c.id == endpoint.id)
        .values(
            traffic=json.dumps(_nonzero(live)),
            mirror_traffic=json.dumps(_nonzero(mirror)),
            revision=endpoint.revision + 1,
            updated_at=now_ms(),
        )
    )


def _deployment_row(conn: Connection, endpoint_id: int, endpoint: str, name: str) -> Any:
    row = conn.execute(
        select(online_deployments).where(
            online_deployments.c.endpoint_id == endpoint_id, online_deployments.c.name == name
        )
    ).first()
    if row is None:
        known = ", ".join(sorted(_deployment_names(conn, endpoint_id))) or "none"
        raise NotFound(f"endpoint {endpoint!r} has no deployment named {name!r} (deployments: {known})")
    return row


def get_deployment(workspace: Workspace, endpoint: str, name: str) -> Deployment:
    with workspace.store.read() as conn:
        found = get_endpoint_in(conn, endpoint)
        return deployment_from_row(_deployment_row(conn, found.id, endpoint, name), endpoint)


def list_deployments(workspace: Workspace, endpoint: str) -> list[Deployment]:
    with workspace.store.read() as conn:
        found = get_endpoint_in(conn, endpoint)
        rows = conn.execute(
            select(online_deployments)
            .where(online_deployments.c.endpoint_id == found.id)
            .order_by(online_deployments.c.name)
        ).all()
    return [deployment_from_row(row, endpoint) for row in rows]


def delete_deployment(workspace: Workspace, endpoint: str, name: str) -> None:
    """Forget a deployment; refused while it takes live or mirrored traffic (as in Azure)."""
    with workspace.store.write() as conn:
        found = get_endpoint_in(conn, endpoint)
        row = _deployment_row(conn, found.id, endpoint, name)
        if found.traffic.get(name) or found.mirror_traffic.get(name):
            raise Conflict(
                f"deployment {name!r} takes traffic on endpoint {endpoint!r}; move its traffic first",
                hint=f'e.g. `keel online-endpoint update --name {endpoint} --traffic "other=100"`',
            )
        conn.execute(delete(online_deployments).where(online_deployments.c.id == row.id))
        conn.execute(
            update(online_endpoints)
            .where(online_endpoints.c.id == found.id)
            .values(revision=found.revision + 1, updated_at=now_ms())
        )


def report_state(
    workspace: Workspace, deployment_id: int, revision: int, state: str, reason: str | None = None
) -> None:
    """The gateway's word on a deployment revision (a newer revision's report is never overwritten)."""
    with workspace.store.write() as conn:
        conn.execute(
            update(online_deployments)
            .where(online_deployments.c.id == deployment_id, online_deployments.c.revision == revision)
            .values(state=state, state_reason=reason, served_revision=revision)
        )


def deployment_from_row(row: Any, endpoint: str) -> Deployment:
    return Deployment(
        id=row.id,
        endpoint=endpoint,
        name=row.name,
        settings=json.loads(row.spec),
        revision=row.revision,
        state=row.state,
        state_reason=row.state_reason,
        served_revision=row.served_revision,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
