"""Where a running ``keel up`` listens, recorded in the store so the CLI can find it.

Kept apart from the gateway itself so that ``keel online-endpoint invoke`` and
``online-deployment create`` find it without importing the serving machinery.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy import delete, insert, select, update

from keel.clock import now_ms
from keel.errors import Conflict
from keel.store.schema import online_gateways
from keel.workspace import Workspace

STALE_AFTER_MS = 10_000


def log_path(workspace: Workspace, endpoint: str, deployment: str) -> Path:
    """Where a deployment's workers write their output (``online-deployment get-logs`` reads it)."""
    return workspace.config.root / "endpoints" / endpoint / deployment / "worker.log"


def register_gateway(workspace: Workspace, url: str) -> int:
    """Record this gateway; refused while another one serves the same workspace."""
    other = find_gateway(workspace)
    if other is not None and other[1] != os.getpid():
        raise Conflict(
            f"another `keel up` serves this workspace at {other[0]} (process {other[1]})",
            hint="stop it first; one gateway serves a workspace's endpoints",
        )
    now = now_ms()
    with workspace.store.write() as conn:
        result = conn.execute(
            insert(online_gateways).values(
                hostname=socket.gethostname(),
                process_id=os.getpid(),
                url=url,
                started_at=now,
                heartbeat_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def beat(workspace: Workspace, gateway_id: int | None) -> None:
    with workspace.store.write() as conn:
        conn.execute(
            update(online_gateways).where(online_gateways.c.id == gateway_id).values(heartbeat_at=now_ms())
        )


def unregister_gateway(workspace: Workspace, gateway_id: int) -> None:
    with workspace.store.write() as conn:
        conn.execute(delete(online_gateways).where(online_gateways.c.id == gateway_id))


def find_gateway(workspace: Workspace) -> tuple[str, int] | None:
    """The URL and process of the gateway serving this workspace, if one is alive."""
    with workspace.store.read() as conn:
        rows = conn.execute(select(online_gateways).order_by(online_gateways.c.heartbeat_at.desc())).all()
    here = socket.gethostname()
    for row in rows:
        if now_ms() - row.heartbeat_at > STALE_AFTER_MS:
            continue
        if row.hostname == here and not _alive(row.process_id):
            continue
        return row.url, row.process_id
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
