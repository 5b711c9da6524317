"""``keel up``: the gateway, kept in line with the store, plus the workspace's background services.

Every 200 ms the host reads the endpoint and deployment tables (two small
queries) and compares revisions with what it serves. A new deployment revision
gets a fresh pool of workers; only once they are all ready does it replace the
old pool, which then finishes its in-flight requests and stops — so updates and
traffic shifts drop nothing. Endpoints and deployments outlive the process: a
restarted ``keel up`` brings back whatever the store holds.

Background services: :func:`start_background_services` is the one place where
long-running loops that belong beside the gateway start: the scheduler and the
housekeeping thread (webhook deliveries, approval timeouts). Keel's own API —
``/api/jobs`` and the schedule event route — is served on the same port by
:func:`control_app`, behind workspace API tokens as on ``keel server``; endpoint
routes keep their endpoint keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from keel.endpoints.online import records
from keel.endpoints.online.auth import Verifier, unseal
from keel.endpoints.online.gateway import DeploymentState, Gateway
from keel.endpoints.online.gateways import beat, find_gateway, log_path, register_gateway, unregister_gateway
from keel.endpoints.online.pool import DeploymentPool, Unavailable, warm_up
from keel.endpoints.online.routing import Route
from keel.endpoints.online.worker import WorkerConfig
from keel.errors import Conflict, InvalidInput
from keel.store.schema import online_deployments, online_endpoints
from keel.workspace import Workspace

POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 2.0


class BackgroundService(Protocol):
    def stop(self) -> None: ...


class SchedulerThread:
    """The scheduler loop in a thread of ``keel up``; ``stop`` ends it after its current tick."""

    def __init__(self, workspace: Workspace, *, tick_seconds: float = 1.0) -> None:
        from keel.schedules.loop import run_scheduler

        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_scheduler,
            args=(workspace,),
            kwargs={"stop": self._stop, "tick_seconds": tick_seconds},
            name="keel-scheduler",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def start_background_services(workspace: Workspace, *, scheduler: bool = True) -> list[BackgroundService]:
    """Loops ``keel up`` hosts beside the gateway, started once at start-up and stopped at exit.

    Housekeeping always runs (webhook deliveries, approval timeouts); the scheduler runs
    unless ``scheduler`` is false, for workspaces whose ``keel scheduler`` runs apart.
    """
    from keel.server.housekeeping import Housekeeping

    services: list[BackgroundService] = []
    housekeeping = Housekeeping(workspace)
    housekeeping.start()
    services.append(housekeeping)
    if scheduler:
        loop = SchedulerThread(workspace)
        loop.start()
        services.append(loop)
    return services


def control_app(workspace: Workspace, *, require_token: bool) -> Any:
    """Keel's own API beside the gateway (``/api/jobs``, schedule events), as ``keel server`` guards it:
    a workspace API token from clients beyond loopback, and from all when ``require_token``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from keel.schedules.routes import routes as schedule_routes
    from keel.server.api import routes as api_routes
    from keel.server.auth import TokenAuth

    routes = [*schedule_routes(workspace), *api_routes(workspace)]
    middleware = [Middleware(TokenAuth, store=workspace.store, require_token=require_token)]
    return Starlette(routes=routes, middleware=middleware)


class WithControl:
    """One ASGI app for the port: ``/api/…`` to the control app, the rest (and lifespan) to the gateway."""

    def __init__(self, gateway: Gateway, control: Any) -> None:
        self.gateway = gateway
        self.control = control

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            await self.control(scope, receive, send)
        else:
            await self.gateway(scope, receive, send)


@dataclass(frozen=True)
class _Seen:
    endpoint_revision: int
    deployments: dict[str, tuple[int, int, str]]  # name → (id, revision, settings as stored)


class Host:
    """Brings the gateway's routes and worker pools in line with the store."""

    def __init__(self, workspace: Workspace, gateway: Gateway, url: str, *, scheduler: bool = True) -> None:
        self.workspace = workspace
        self.scheduler = scheduler
        self.gateway = gateway
        self.url = url
        self.seen: dict[str, _Seen] = {}
        self.starting: dict[tuple[str, str], int] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.services: list[BackgroundService] = []
        self.gateway_id: int | None = None
        self.warming: asyncio.Future[None] | None = None
        self.wake = asyncio.Event()  # set by POST /-/sync: the CLI just changed something
        self.stopping = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.gateway_id = await loop.run_in_executor(None, register_gateway, self.workspace, self.url)
        self._spawn(self._poll())
        self._spawn(self._heartbeat())
        self.services = await loop.run_in_executor(
            None, lambda: start_background_services(self.workspace, scheduler=self.scheduler)
        )

    async def stop(self) -> None:
        self.stopping = True
        loop = asyncio.get_running_loop()
        stops = [loop.run_in_executor(None, service.stop) for service in self.services]
        await asyncio.gather(*stops, return_exceptions=True)  # each waits for its thread's round
        for task in list(self.tasks):
            task.cancel()
        pools = [state.pool for state in self.gateway.deployments.values() if state.pool is not None]
        self.gateway.routes = {}
        await asyncio.gather(*(pool.stop(grace=10) for pool in pools), return_exceptions=True)
        if self.gateway_id is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, unregister_gateway, self.workspace, self.gateway_id
            )

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _poll(self) -> None:
        """Follow the store; the fork server warms up meanwhile (the first workers wait for it)."""
        self.warming = asyncio.get_running_loop().run_in_executor(None, warm_up)
        while not self.stopping:
            try:
                await self.sync()
            except Exception as exc:  # the database may be briefly unavailable: keep serving
                sys.stderr.write(f"keel up: cannot read endpoints ({exc}); serving what was known\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
            self.wake.clear()

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, beat, self.workspace, self.gateway_id)

    async def sync(self) -> None:
        """One reconciliation pass: routes for changed endpoints, pools for changed deployments."""
        loop = asyncio.get_running_loop()
        endpoints, deployments = await loop.run_in_executor(None, _read_all, self.workspace)
        current: dict[str, _Seen] = {}
        routes = dict(self.gateway.routes)
        for row in endpoints:
            mine = {d.name: (d.id, d.revision, d.spec) for d in deployments if d.endpoint_id == row.id}
            current[row.name] = _Seen(row.revision, mine)
            previous = self.seen.get(row.name)
            if (
                previous is None
                or previous.endpoint_revision != row.revision
                or set(previous.deployments) != set(mine)
            ):
                routes[row.name] = await loop.run_in_executor(None, self._route, row, set(mine))
            for name, (deployment_id, revision, spec) in mine.items():
                self._ensure(row.name, name, deployment_id, revision, spec)
        for gone in set(routes) - set(current):
            routes.pop(gone)
        self.gateway.routes = routes
        self._retire(current)
        self.seen = current

    def _route(self, row: Any, deployments: set[str]) -> Route:
        endpoint = records.endpoint_from_row(row)
        verifier = Verifier(
            endpoint.name, endpoint.auth_mode, unseal(endpoint.sealed_credentials, self.workspace.config.root)
        )
        return Route.build(endpoint.name, verifier, endpoint.traffic, endpoint.mirror_traffic, deployments)

    def _ensure(self, endpoint: str, name: str, deployment_id: int, revision: int, spec: str) -> None:
        key = (endpoint, name)
        state = self.gateway.deployments.get(key)
        serving = state.pool.revision if state is not None and state.pool is not None else None
        failed_revision = state.failed_revision if state is not None else None
        if revision in (serving, self.starting.get(key), failed_revision):
            return
        if state is None:
            self.gateway.deployments[key] = DeploymentState()
        self.starting[key] = revision
        self._spawn(self._bring_up(endpoint, name, deployment_id, revision, _settings(spec)))

    async def _bring_up(
        self, endpoint: str, name: str, deployment_id: int, revision: int, settings: dict[str, Any]
    ) -> None:
        key = (endpoint, name)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, records.report_state, self.workspace, deployment_id, revision, "starting", None
        )
        pool = DeploymentPool(
            endpoint,
            name,
            revision=revision,
            settings=settings,
            make_config=self._worker_config,
            metrics=self.gateway.metrics,
        )
        try:
            await pool.start()
        except Unavailable as exc:
            if self.starting.get(key) == revision:
                self.starting.pop(key, None)
                state = self.gateway.deployments.setdefault(key, DeploymentState())
                if state.pool is None:
                    state.problem = exc.message
                state.failed_revision = revision
            await loop.run_in_executor(
                None, records.report_state, self.workspace, deployment_id, revision, "failed", exc.message
            )
            _say(f"deployment {endpoint}/{name} (revision {revision}) failed: {exc.message}")
            return
        if self.starting.get(key) != revision or key not in self.gateway.deployments or self.stopping:
            await pool.stop(grace=0)  # superseded or deleted while starting
            return
        self.starting.pop(key, None)
        state = self.gateway.deployments[key]
        old, state.pool, state.problem = state.pool, pool, "ready"
        await loop.run_in_executor(
            None, records.report_state, self.workspace, deployment_id, revision, "ready", None
        )
        count = settings["instance_count"]
        _say(f"deployment {endpoint}/{name} (revision {revision}) serving with {count} worker(s)")
        if old is not None:
            await old.stop()

    def _retire(self, current: dict[str, _Seen]) -> None:
        """Deployments no longer recorded: out of routing now, workers stopped once idle."""
        live = {(endpoint, name) for endpoint, seen in current.items() for name in seen.deployments}
        for key in list(self.gateway.deployments):
            if key not in live:
                state = self.gateway.deployments.pop(key)
                self.starting.pop(key, None)
                if state.pool is not None:
                    self._spawn(state.pool.stop())

    def _worker_config(self, pool: DeploymentPool, index: int) -> WorkerConfig:
        config = self.workspace.config
        return WorkerConfig(
            root=str(config.root),
            database_url=config.database_url,
            artifacts_url=config.artifacts_url,
            endpoint=pool.endpoint,
            deployment=pool.name,
            revision=pool.revision,
            instance=index,
            settings=pool.settings,
            log_path=str(log_path(self.workspace, pool.endpoint, pool.name)),
        )


def _say(line: str) -> None:
    sys.stderr.write(f"keel up: {line}\n")
    sys.stderr.flush()


def _settings(spec: str) -> dict[str, Any]:
    import json

    return dict(json.loads(spec))


def _read_all(workspace: Workspace) -> tuple[list[Any], list[Any]]:
    with workspace.store.read() as conn:
        endpoints = conn.execute(select(online_endpoints)).all()
        deployments = conn.execute(select(online_deployments)).all()
    return list(endpoints), list(deployments)


# -- running it ----------------------------------------------------------------------------


def check_bind(host: str, *, require_auth: bool) -> None:
    """Loopback always; another interface only while every route but health checks credentials."""
    if not require_auth and not is_loopback(host):
        raise InvalidInput(
            f"refusing to listen on {host} without authentication",
            hint="drop --no-auth (endpoint keys or tokens then guard every route), or bind 127.0.0.1",
        )


def is_loopback(host: str) -> bool:
    """True for names and addresses that stay on this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def serve(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    require_auth: bool = True,
    require_token: bool | None = None,
    scheduler: bool = True,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run the gateway, Keel's API and the background services in the foreground until interrupted.

    ``require_token`` (default: keel.yaml's ``server.require_token``) asks loopback clients of
    ``/api/…`` for a workspace token too; ``scheduler=False`` leaves schedules to ``keel scheduler``.
    """
    import uvicorn

    from keel.server.auth import auth_settings, check_can_listen
    from keel.tracking.experiments import ensure_default_experiment

    check_bind(host, require_auth=require_auth)
    check_can_listen(workspace.store, host)
    if require_token is None:
        require_token = auth_settings(workspace.config.sections, workspace.config.source).require_token
    running = find_gateway(workspace)
    if running is not None:
        raise Conflict(
            f"another `keel up` serves this workspace at {running[0]} (process {running[1]})",
            hint="stop it first; one gateway serves a workspace's endpoints",
        )
    listener = _listen(host, port)
    bound = listener.getsockname()
    url = f"http://{_url_host(host)}:{bound[1]}"
    ensure_default_experiment(workspace.store)  # jobs sent to /api/jobs land there by default
    gateway = Gateway(require_auth=require_auth)
    runtime = Host(workspace, gateway, url, scheduler=scheduler)
    gateway.on_startup = runtime.start
    gateway.on_change = runtime.wake.set
    gateway.on_shutdown = runtime.stop
    if announce is not None:
        announce(url)
    config = uvicorn.Config(
        WithControl(gateway, control_app(workspace, require_token=require_token)),
        log_level="warning",
        access_log=False,
        http="httptools",
        lifespan="on",
        server_header=False,
        date_header=False,
        backlog=2048,
        timeout_graceful_shutdown=15,
    )
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off only on sockets that say they
    # are TCP, and with it on, a keep-alive client waits 40 ms (a delayed ACK) for each answer.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    listener.listen(2048)
    return listener


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
