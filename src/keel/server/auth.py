"""Who may call Keel's HTTP servers: workspace API tokens, required beyond loopback.

:class:`TokenAuth` is one ASGI middleware for ``keel server`` and ``keel up``. Every
route but the health check needs ``Authorization: Bearer <token>`` from a client
that is not on loopback, and from every client when the workspace asks for it
(keel.yaml ``server: {require_token: true}``, or ``keel server --require-token``).
The MLflow client sends its ``MLFLOW_TRACKING_TOKEN`` exactly so.

A reverse proxy on the same machine makes every client look like loopback: set
``require_token`` when Keel runs behind one. :func:`check_can_listen` refuses to
bind beyond loopback while the workspace has no token, since nobody could call it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from keel.errors import InvalidInput, Unauthenticated, error_body
from keel.store import Store

OPEN_PATHS = ("/health",)
_MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
_SERVER_KEYS = {"require_token"}


@dataclass(frozen=True)
class AuthSettings:
    require_token: bool = False


def auth_settings(sections: Mapping[str, Any], source: str = "keel.yaml") -> AuthSettings:
    """The ``server`` section of keel.yaml, checked."""
    raw = sections.get("server")
    if raw is None:
        return AuthSettings()
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source}: server: expected a mapping, e.g. {{require_token: true}}")
    unknown = sorted(set(raw) - _SERVER_KEYS)
    if unknown:
        raise InvalidInput(f"{source}: server.{unknown[0]}: unknown setting", hint="known: require_token")
    require = raw.get("require_token", False)
    if not isinstance(require, bool):
        raise InvalidInput(f"{source}: server.require_token: expected true or false, got {require!r}")
    return AuthSettings(require_token=require)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) is this machine's loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_can_listen(store: Store, host: str) -> None:
    """Refuse an interface beyond loopback while no token exists: every caller there needs one."""
    from keel.server.tokens import has_tokens

    if not is_loopback(host) and not has_tokens(store):
        raise InvalidInput(
            f"refusing to listen on {host}: clients beyond loopback need a workspace API token, "
            "and this workspace has none",
            hint="create one with `keel token create NAME` (or bind 127.0.0.1)",
        )


def client_is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is not None and _is_loopback_address(str(client[0]))


@functools.lru_cache(maxsize=4096)
def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenAuth:
    """ASGI middleware: a valid workspace API token, or a 401, for every route but ``open_paths``
    (route templates such as ``/health`` or ``/api/schedules/{name}/events``, for routes
    that authenticate callers their own way).

    Valid tokens are remembered for ``cache_seconds`` so a busy endpoint pays a database
    read at most that often per token; a revoked token stops working within that time.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store,
        require_token: bool = False,
        open_paths: Collection[str] = OPEN_PATHS,
        cache_seconds: float = 1.0,
    ) -> None:
        self.app = app
        self.store = store
        self.require_token = require_token
        self.open_paths = [compile_path(path)[0] for path in open_paths]
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[str, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self.require_token and client_is_loopback(scope):
            await self.app(scope, receive, send)
            return
        presented = _bearer(scope)
        name = await self._check(presented) if presented else None
        if name is None:
            await _refuse(scope, send, presented is not None)
            return
        scope.setdefault("state", {})["token_name"] = name
        await self.app(scope, receive, send)

    def _is_open(self, path: str) -> bool:
        return any(pattern.match(path) for pattern in self.open_paths)

    async def _check(self, presented: str) -> str | None:
        known = self._known.get(presented)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        name: str | None = await run_in_threadpool(_check_token, self.store, presented)
        if name is None:
            self._known.pop(presented, None)
            return None
        if len(self._known) > 1000:
            self._known.clear()
        self._known[presented] = (name, time.monotonic() + self.cache_seconds)
        return name


def _check_token(store: Store, presented: str) -> str | None:
    from keel.server.tokens import check_token

    return check_token(store, presented)


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return str(token.strip())
    return None


async def _refuse(scope: Scope, send: Send, presented: bool) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    error = Unauthenticated(
        "the API token is not valid" if presented else "a workspace API token is required",
        hint="send Authorization: Bearer <token> (create one with `keel token create NAME`)",
    )
    if str(scope["path"]).startswith(_MLFLOW_PREFIXES):
        body: dict[str, Any] = {"error_code": error.mlflow_code, "message": str(error)}
    else:
        body = error_body(error)
    payload = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"www-authenticate", b'Bearer realm="keel"'),
    ]
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
