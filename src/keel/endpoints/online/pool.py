"""The gateway's side of a deployment: its worker processes, their sockets, and who answers next.

Workers are forked from a warm server process that has numpy, pandas and
scikit-learn imported already (``multiprocessing``'s forkserver), so a new
deployment is serving in well under a second. Each worker talks to the gateway
over its own socket pair; a request goes to the ready worker with the fewest
requests in flight, and a deployment whose workers all hold
``max_concurrent_requests_per_instance`` requests refuses more at once (429).
A worker that dies after starting (a crash, ``kill -9``) is started again while
its siblings keep answering; one that fails while loading marks the deployment
failed with the reason, and is not retried until the deployment changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from keel.endpoints.online import frames
from keel.endpoints.online.worker import WorkerConfig

# Imported once by the fork server, so each worker starts with them loaded (missing ones are skipped).
PRELOAD = [
    "keel.endpoints.online.worker",
    "keel.endpoints.online.scoring",
    "keel.models.registry",
    "keel.models.scoring",
    "keel.models.flavors",
    "keel.models.files",
    "keel.models.mlflow_format",
    "keel.data.assets",
    "keel.endpoints.online.collector",
    "keel.endpoints.online.oip",
    "numpy",
    "pandas",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "skops.io",
    "pyarrow.parquet",
]
RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
_context: Any = None


def worker_context() -> Any:
    """The forkserver context, started once per gateway with the heavy imports done."""
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def warm_up() -> None:
    """Start the fork server now (it imports for a second or two) rather than at the first deployment."""
    from multiprocessing import forkserver

    worker_context()
    forkserver.ensure_running()


@dataclass
class Answer:
    status: int
    content: int
    body: bytes
    batch: int
    header_length: int


class Unavailable(Exception):
    """No worker can take the request now (starting, failed, or every worker at its limit)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class WorkerLink(asyncio.Protocol):
    """One worker's socket: frames out, answers matched to the futures waiting for them."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        offset = 0
        size = frames.HEAD.size
        while len(buffer) - offset >= size:
            length, request_id, kind = frames.HEAD.unpack_from(buffer, offset)
            end = offset + size + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + size : end])
            offset = end
            if kind in (frames.RESPONSE, frames.PONG):
                future = self.waiting.pop(request_id, None)
                self.instance.in_flight -= 1
                self.instance.pool.in_flight -= 1
                if future is not None and not future.done():
                    future.set_result(payload if kind == frames.PONG else _answer(payload))
            elif kind == frames.READY:
                self.instance.ready(orjson.loads(payload))
            elif kind == frames.FAILED:
                self.instance.failed(str(orjson.loads(payload).get("message")))
        if offset:
            del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(Unavailable(502, "the deployment's worker stopped while answering"))
        self.instance.pool.in_flight -= len(waiting)
        self.instance.in_flight = 0
        self.instance.lost()

    def send(self, kind: int, payload: bytes) -> asyncio.Future[Any]:
        self.next_id = (self.next_id + 1) & 0xFFFFFFFF
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        self.instance.in_flight += 1
        self.instance.pool.in_flight += 1
        # Frames sent in one turn of the event loop leave in one write: under load the worker
        # reads many requests per wake-up, and the gateway makes one system call for them.
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outgoing.append(frames.frame(kind, self.next_id, payload))
        return future

    def _flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(outgoing))


def _answer(payload: bytes) -> Answer:
    status, content, batch, header_length = frames.RESPONSE_HEAD.unpack_from(payload)
    return Answer(status, content, payload[frames.RESPONSE_HEAD.size :], batch, header_length)


class Instance:
    """One worker process of a deployment."""

    def __init__(self, pool: DeploymentPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: Any = None
        self.link: WorkerLink | None = None
        self.in_flight = 0
        self.is_ready = False
        self.ever_ready = False
        self.started = asyncio.get_running_loop().create_future()
        self.restarts = 0
        self.probe_failures = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        config = self.pool.worker_config(self.index)
        process = worker_context().Process(target=_worker_main, args=(config, theirs), daemon=True)
        try:
            await loop.run_in_executor(None, process.start)
        finally:
            theirs.close()
        self.process = process
        _, self.link = await loop.create_unix_connection(lambda: WorkerLink(self), sock=ours)

    def ready(self, report: dict[str, Any]) -> None:
        self.is_ready = self.ever_ready = True
        self.probe_failures = 0
        self.pool.instance_ready(self, report)
        if not self.started.done():
            self.started.set_result(None)

    def failed(self, message: str) -> None:
        self.is_ready = False
        if not self.started.done():
            self.started.set_exception(Unavailable(503, message))

    def lost(self) -> None:
        was_ready = self.is_ready
        self.is_ready = False
        self.link = None
        if not self.started.done():
            self.started.set_exception(Unavailable(503, "the worker exited while loading the model"))
        with contextlib.suppress(Exception):
            self.process.join(timeout=0)
        if was_ready or self.ever_ready:
            self.pool.instance_lost(self)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            if self.process is not None and self.process.pid:
                os.kill(self.process.pid, 9)


def _worker_main(config: WorkerConfig, connection: socket.socket) -> None:
    from keel.endpoints.online.worker import main

    main(config, connection)


class DeploymentPool:
    """The workers of one revision of one deployment."""

    def __init__(
        self,
        endpoint: str,
        name: str,
        *,
        revision: int,
        settings: dict[str, Any],
        make_config: Callable[[DeploymentPool, int], WorkerConfig],
        metrics: Any,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.revision = revision
        self.settings = settings
        self.request = settings["request"]
        self.limit = int(self.request["max_concurrent_requests_per_instance"])
        self.timeout = float(self.request["request_timeout_ms"]) / 1000
        self._make_config = make_config
        self.metrics = metrics
        self.instances: list[Instance] = []
        self.in_flight = 0
        self.closing = False
        self.metadata: dict[str, Any] = {}
        metrics.in_flight.labels(endpoint, name).set_function(lambda: self.in_flight)  # read at scrape time
        self.batches = metrics.batch_size.labels(endpoint, name)
        self.batching = int(self.request.get("max_batch_size", 1)) > 1 and not settings.get("code")
        self.failure: str | None = None

    def worker_config(self, index: int) -> WorkerConfig:
        return self._make_config(self, index)

    async def start(self) -> None:
        """Start every instance; raises :class:`Unavailable` with the reason if the model cannot load."""
        self.instances = [Instance(self, index) for index in range(int(self.settings["instance_count"]))]
        try:
            await asyncio.gather(*(instance.start() for instance in self.instances))
            await asyncio.gather(*(instance.started for instance in self.instances))
        except Unavailable as exc:
            self.failure = exc.message
            await self.stop(grace=0)
            raise
        asyncio.get_running_loop().create_task(self._probe())

    def instance_ready(self, instance: Instance, report: dict[str, Any]) -> None:
        self.metadata = {"inputs": report.get("inputs", []), "outputs": report.get("outputs", [])}
        seconds = float(report.get("load_seconds", 0.0))
        self.metrics.model_load.labels(self.endpoint, self.name, str(instance.index)).set(seconds)

    def instance_lost(self, instance: Instance) -> None:
        if self.closing:
            return
        self.metrics.worker_restarts.labels(self.endpoint, self.name).inc()
        delay = RESTART_DELAYS[min(instance.restarts, len(RESTART_DELAYS) - 1)]
        instance.restarts += 1
        asyncio.get_running_loop().create_task(self._restart(instance, delay))

    async def _restart(self, instance: Instance, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.closing:
            return
        replacement = Instance(self, instance.index)
        replacement.restarts = instance.restarts
        replacement.ever_ready = True
        self.instances[instance.index] = replacement
        try:
            await replacement.start()
            await replacement.started
        except (Unavailable, OSError):
            replacement.lost()

    @property
    def ready_count(self) -> int:
        return sum(1 for instance in self.instances if instance.is_ready)

    def pick(self) -> WorkerLink:
        """The ready worker with the fewest requests in flight, if any has room."""
        best: Instance | None = None
        for instance in self.instances:
            if instance.is_ready and (best is None or instance.in_flight < best.in_flight):
                best = instance
        if best is None:
            raise Unavailable(503, f"deployment {self.name!r} has no worker ready")
        if best.in_flight >= self.limit or best.link is None:
            raise Unavailable(
                429,
                f"deployment {self.name!r} is at its limit of {self.limit} concurrent requests per instance",
            )
        return best.link

    async def call(self, kind: int, payload: bytes) -> Answer:
        link = self.pick()
        future = link.send(kind, payload)
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, future)
        try:
            answer: Answer = await future
        finally:
            timer.cancel()
        if self.batching:
            self.batches.observe(answer.batch)
        return answer

    async def _probe(self) -> None:
        """Liveness: a worker that does not answer a ping for ``failure_threshold`` periods is replaced."""
        probe = self.settings.get("liveness_probe") or {}
        period, timeout = float(probe.get("period", 10)), float(probe.get("timeout", 2))
        threshold = int(probe.get("failure_threshold", 30))
        await asyncio.sleep(float(probe.get("initial_delay", 10)))
        while not self.closing:
            for instance in list(self.instances):
                if instance.is_ready and instance.link is not None:
                    await self._ping(instance, timeout, threshold)
            await asyncio.sleep(period)

    async def _ping(self, instance: Instance, timeout: float, threshold: int) -> None:
        assert instance.link is not None
        future = instance.link.send(frames.PING, b"")
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            instance.probe_failures = 0
        except (TimeoutError, Unavailable):
            instance.probe_failures += 1
            if instance.probe_failures >= threshold:
                instance.kill()

    async def stop(self, grace: float = 30.0) -> None:
        """Let in-flight requests finish (up to ``grace`` seconds), then stop the workers."""
        self.closing = True
        deadline = time.monotonic() + grace
        while self.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for instance in self.instances:
            if instance.link is not None and instance.link.transport is not None:
                instance.link.transport.close()
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        for instance in self.instances:
            if instance.process is not None:
                await loop.run_in_executor(None, _terminate, instance.process)


def _terminate(process: Any) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join(timeout=5)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
