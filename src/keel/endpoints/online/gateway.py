"""The gateway: one ASGI app in front of every deployment's workers.

    GET  /v2/health/live, /v2/health/ready                       no credentials (health)
    GET  /v2                                                     server metadata
    GET  /v2/models/{endpoint}[/versions/{deployment}]           model metadata
    GET  /v2/models/{endpoint}[/versions/{deployment}]/ready     model readiness
    POST /v2/models/{endpoint}[/versions/{deployment}]/infer     Open Inference Protocol
    POST /endpoints/{endpoint}/score                             Azure ML scoring (run(raw_data))
    POST /endpoints/{endpoint}/invocations                       MLflow scoring server shapes
    GET  /metrics, /openapi.json                                 loopback clients, or with a credential

The Open Inference Protocol's model name is the endpoint's name and its model
version is a deployment's name, so ``versions/{deployment}`` does what Azure's
``azureml-model-deployment`` header does. Every route but health needs the
endpoint's key or token as ``Authorization: Bearer …``.

The app is plain ASGI, not a framework: one request costs a path split, a header
scan, a credential comparison, a weighted draw and one frame to a worker.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from keel import __version__
from keel.endpoints.online import frames
from keel.endpoints.online.auth import bearer
from keel.endpoints.online.errors import error_document
from keel.endpoints.online.metrics import GatewayMetrics
from keel.endpoints.online.pool import Answer, DeploymentPool, Unavailable
from keel.endpoints.online.routing import Route, RouteError

MAX_BODY_BYTES = 100 * 1024 * 1024
# Correlation ids the gateway makes: a random prefix per process and a counter (unique, and cheap).
_PREFIX = secrets.token_hex(8).encode()
_SEQUENCE = itertools.count(1)
_CORRELATION = re.compile(rb"^[A-Za-z0-9._:\-]{1,64}$")
_JSON = b"application/json"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class DeploymentState:
    """What the gateway knows of one deployment: its serving pool, or why it has none."""

    def __init__(self, pool: DeploymentPool | None = None, problem: str | None = None) -> None:
        self.pool = pool
        self.problem = problem or "starting"
        self.failed_revision: int | None = None


class Gateway:
    """The ASGI app; ``routes`` and ``deployments`` are replaced by the host as the store changes."""

    def __init__(
        self,
        *,
        require_auth: bool = True,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.routes: dict[str, Route] = {}
        self.deployments: dict[tuple[str, str], DeploymentState] = {}
        self.metrics = GatewayMetrics()
        self.require_auth = require_auth
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.background: set[asyncio.Task[Any]] = set()
        self.on_change: Callable[[], None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.on_startup is not None:
                        await self.on_startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    await self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        if parts[0] == "endpoints" and len(parts) == 3:
            if parts[2] in ("score", "invocations"):
                if method != "POST":
                    return await _plain(send, 405, b"use POST", allow=b"POST")
                kind = frames.SCORE if parts[2] == "score" else frames.INVOCATIONS
                return await self._score(scope, receive, send, parts[1], version=None, kind=kind)
        elif parts[0] == "v2":
            return await self._v2(scope, receive, send, parts, method)
        elif path == "/metrics" and method == "GET":
            return await self._guarded(scope, send, self.metrics.exposition, b"text/plain; version=0.0.4")
        elif path == "/openapi.json" and method == "GET":
            from keel.endpoints.online.openapi import document

            return await self._guarded(scope, send, lambda: document(sorted(self.routes)), _JSON)
        elif path == "/-/sync" and method == "POST":
            return await self._sync(scope, send)
        elif path in ("/", "/health") and method == "GET":
            return await _plain(send, 200, b"OK")
        await _json(send, 404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}})

    # -- scoring ---------------------------------------------------------------------------

    async def _score(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        endpoint: str,
        *,
        version: str | None,
        kind: int,
    ) -> None:
        started = time.perf_counter()
        headers = _headers(scope)
        route = self.routes.get(endpoint)
        if route is None:
            return await _fail(send, kind, 404, "not_found", f"no online endpoint named {endpoint!r}")
        if not self._authorized(route, headers):
            self.metrics.observe(endpoint, "", 401, time.perf_counter() - started)
            return await _fail(send, kind, 401, "unauthenticated", _UNAUTHENTICATED)
        correlation = _correlation(headers)
        try:
            body = await _body(receive)
            deployment = route.choose(version or _text(headers.get(b"azureml-model-deployment")))
            pool = self._pool(endpoint, deployment)
            payload = frames.request_payload(
                frames.content_code(headers.get(b"content-type")),
                correlation,
                body,
                _header_length(headers) if kind == frames.INFER else frames.NO_HEADER,
            )
        except RouteError as exc:
            self.metrics.observe(endpoint, "", exc.status, time.perf_counter() - started)
            return await _fail(send, kind, exc.status, "not_routed", exc.message, correlation=correlation)
        mirror = route.mirror_to(deployment)
        if mirror is not None:
            self._mirror(endpoint, mirror, kind, payload)
        status = await self._forward(
            send, pool, kind, payload, correlation=correlation, deployment=deployment
        )
        self.metrics.observe(endpoint, deployment, status, time.perf_counter() - started)

    def _authorized(self, route: Route, headers: dict[bytes, bytes]) -> bool:
        if not self.require_auth:
            return True
        presented = bearer(headers.get(b"authorization"))
        return presented is not None and route.verifier is not None and route.verifier.accepts(presented)

    def _pool(self, endpoint: str, deployment: str) -> DeploymentPool:
        state = self.deployments.get((endpoint, deployment))
        if state is None or state.pool is None:
            problem = (
                "is starting" if state is None or state.problem == "starting" else f"failed: {state.problem}"
            )
            raise RouteError(503, f"deployment {deployment!r} of endpoint {endpoint!r} {problem}")
        return state.pool

    async def _forward(
        self,
        send: Send,
        pool: DeploymentPool,
        kind: int,
        payload: bytes,
        *,
        correlation: bytes,
        deployment: str,
    ) -> int:
        try:
            answer: Answer = await pool.call(kind, payload)
        except Unavailable as exc:
            await _fail(
                send,
                kind,
                exc.status,
                "unavailable",
                exc.message,
                correlation=correlation,
                deployment=deployment,
            )
            return exc.status
        except TimeoutError:
            limit = f"{pool.timeout * 1000:.0f} ms"
            message = f"deployment {deployment!r} did not answer within request_timeout_ms ({limit})"
            await _fail(send, kind, 408, "timeout", message, correlation=correlation, deployment=deployment)
            return 408
        headers = [
            (b"content-type", frames.CONTENT_TYPES[answer.content]),
            (b"x-request-id", correlation),
            (b"azureml-model-deployment", deployment.encode()),
        ]
        if answer.content == frames.OCTET:
            headers.append((b"inference-header-content-length", str(answer.header_length).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        return answer.status

    def _mirror(self, endpoint: str, deployment: str, kind: int, payload: bytes) -> None:
        """A copy to the mirror deployment; its answer is dropped, its metrics are kept."""
        state = self.deployments.get((endpoint, deployment))
        if state is None or state.pool is None:
            return
        self.metrics.mirrored.labels(endpoint, deployment).inc()
        task = asyncio.get_running_loop().create_task(
            self._mirrored(state.pool, endpoint, deployment, kind=kind, payload=payload)
        )
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _mirrored(
        self, pool: DeploymentPool, endpoint: str, deployment: str, *, kind: int, payload: bytes
    ) -> None:
        started = time.perf_counter()
        try:
            status = (await pool.call(kind, payload)).status
        except Unavailable as exc:
            status = exc.status
        except TimeoutError:
            status = 408
        self.metrics.observe(endpoint, deployment, status, time.perf_counter() - started)

    # -- Open Inference Protocol -----------------------------------------------------------

    async def _v2(
        self, scope: dict[str, Any], receive: Receive, send: Send, parts: list[str], method: str
    ) -> None:
        if parts[1:] == ["health", "live"] and method == "GET":
            return await _json(send, 200, {"live": True})
        if parts[1:] == ["health", "ready"] and method == "GET":
            ready = self._serving()
            return await _json(send, 200 if ready else 400, {"ready": ready})
        if len(parts) == 1 and method == "GET":
            return await self._server_metadata(scope, send)
        if len(parts) < 3 or parts[1] != "models":
            return await _fail(send, frames.INFER, 404, "not_found", f"no route {method} {scope['path']}")
        endpoint, rest = parts[2], parts[3:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        if rest == ["infer"]:
            if method != "POST":
                return await _plain(send, 405, b"use POST", allow=b"POST")
            return await self._score(scope, receive, send, endpoint, version=version, kind=frames.INFER)
        if rest in ([], ["ready"]) and method == "GET":
            return await self._model_info(scope, send, endpoint, version, ready_only=bool(rest))
        await _fail(send, frames.INFER, 404, "not_found", f"no route {method} {scope['path']}")

    def _serving(self) -> bool:
        """Ready: every deployment that takes live traffic has workers serving."""
        for route in self.routes.values():
            for _, name in route.live:
                state = self.deployments.get((route.endpoint, name))
                if state is None or state.pool is None:
                    return False
        return True

    async def _server_metadata(self, scope: dict[str, Any], send: Send) -> None:
        headers = _headers(scope)
        if self.require_auth and not any(self._authorized(r, headers) for r in self.routes.values()):
            return await _fail(send, frames.INFER, 401, "unauthenticated", _UNAUTHENTICATED)
        await _json(send, 200, {"name": "keel", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def _model_info(
        self, scope: dict[str, Any], send: Send, endpoint: str, version: str | None, *, ready_only: bool
    ) -> None:
        route = self.routes.get(endpoint)
        if route is None:
            return await _fail(
                send, frames.INFER, 404, "not_found", f"no model (endpoint) named {endpoint!r}"
            )
        if not self._authorized(route, _headers(scope)):
            return await _fail(send, frames.INFER, 401, "unauthenticated", _UNAUTHENTICATED)
        if version is not None and version not in route.deployments:
            return await _fail(
                send, frames.INFER, 404, "not_found", f"model {endpoint!r} has no version {version!r}"
            )
        names = [version] if version else sorted(route.deployments)
        states = [self.deployments.get((endpoint, name)) for name in names]
        pools = [state.pool for state in states if state is not None and state.pool is not None]
        if ready_only:
            ready = bool(pools) and (version is not None or bool(route.live))
            return await _json(send, 200 if ready else 400, {"name": endpoint, "ready": ready})
        described: dict[str, Any] = {"name": endpoint, "versions": names, "platform": "keel"}
        if pools:
            described.update(pools[0].metadata)
        await _json(send, 200, described)

    async def _sync(self, scope: dict[str, Any], send: Send) -> None:
        """The CLI says the store changed: read it now rather than at the next poll (loopback only)."""
        if not _is_loopback((scope.get("client") or ("", 0))[0]):
            return await _json(
                send, 403, {"error": {"code": "forbidden", "message": "loopback clients only"}}
            )
        if self.on_change is not None:
            self.on_change()
        await _plain(send, 202, b"reading the store")

    async def _guarded(
        self, scope: dict[str, Any], send: Send, produce: Callable[[], bytes], content: bytes
    ) -> None:
        """Operator routes: open to loopback clients, others need a credential of some endpoint."""
        client = (scope.get("client") or ("", 0))[0]
        if self.require_auth and not _is_loopback(client):
            headers = _headers(scope)
            if not any(self._authorized(route, headers) for route in self.routes.values()):
                return await _json(
                    send, 401, {"error": {"code": "unauthenticated", "message": _UNAUTHENTICATED}}
                )
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content)]})
        await send({"type": "http.response.body", "body": produce()})


_UNAUTHENTICATED = (
    "missing or wrong credentials: send the endpoint's key or token as 'Authorization: Bearer <credential>'"
)


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    return dict(scope["headers"])


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None


def _correlation(headers: dict[bytes, bytes]) -> bytes:
    given = headers.get(b"x-request-id") or headers.get(b"x-ms-client-request-id")
    if given and _CORRELATION.match(given):
        return given
    return b"%s-%x" % (_PREFIX, next(_SEQUENCE))


def _header_length(headers: dict[bytes, bytes]) -> int:
    value = headers.get(b"inference-header-content-length")
    if value is None:
        return frames.NO_HEADER
    if not value.isdigit() or int(value) >= frames.NO_HEADER:
        raise RouteError(400, "Inference-Header-Content-Length must be a byte count")
    return int(value)


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RouteError(413, f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fail(
    send: Send,
    kind: int,
    status: int,
    code: str,
    message: str,
    *,
    correlation: bytes | None = None,
    deployment: str | None = None,
) -> None:
    headers = [(b"content-type", _JSON)]
    if correlation is not None:
        headers.append((b"x-request-id", correlation))
    if deployment is not None:
        headers.append((b"azureml-model-deployment", deployment.encode()))
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="keel"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": error_document(kind, status, code, message)})


async def _json(send: Send, status: int, document: Any) -> None:
    import orjson

    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", _JSON)]})
    await send({"type": "http.response.body", "body": orjson.dumps(document)})


async def _plain(send: Send, status: int, text: bytes, allow: bytes | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if allow is not None:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})
