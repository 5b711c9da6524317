"""The background writer: metric logging never waits for the database.

``log_metric`` appends a tuple to a deque (thread-safe, tens of nanoseconds) and
returns. One daemon thread per store drains the deque every ``flush_interval``
seconds, or sooner when a batch is full, and writes each batch in one transaction.
The deque is bounded: past ``max_pending`` points the producer waits, so a stalled
database slows the training loop instead of exhausting memory. ``flush()`` waits
until everything queued before it is committed and re-raises a write failure.
The same thread beats the heart of the jobs this process owns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from keel.errors import KeelError, Unavailable
from keel.store import Store
from keel.tracking import jobs as job_ops
from keel.tracking.metrics import PendingPoint, write_metrics

_log = logging.getLogger(__name__)
_WRITE_ATTEMPTS = 3


class _Marker:
    """Placed in the queue by flush(); set once every point before it is written."""

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricWriter:
    """Queues metric points for one store and writes them in batches."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.2,
        batch_size: int = 50_000,
        max_pending: int = 1_000_000,
        heartbeat_interval: float = job_ops.HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        self._store = store
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._heartbeat_interval = heartbeat_interval
        self._queue: deque[PendingPoint | _Marker] = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: KeelError | None = None
        self._lost = 0
        self._beating: set[int] = set()
        self._last_beat = time.monotonic()
        self._closed = False
        _WRITERS.add(self)

    # -- producer side --------------------------------------------------------------

    def put(self, point: PendingPoint) -> None:
        queue = self._queue
        queue.append(point)
        size = len(queue)
        if size >= self._batch_size:
            self._wake.set()
            if size >= self._max_pending:
                self._wait_for_room()
        if self._thread is None:
            self._start()

    def put_many(self, points: list[PendingPoint]) -> None:
        self._queue.extend(points)
        if len(self._queue) >= self._batch_size:
            self._wake.set()
            if len(self._queue) >= self._max_pending:
                self._wait_for_room()
        if self._thread is None:
            self._start()

    def _wait_for_room(self) -> None:
        while len(self._queue) >= self._max_pending // 2 and self._alive():
            self._wake.set()
            time.sleep(0.005)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every point queued so far is committed; raise if any was lost."""
        if self._thread is not None and self._alive():
            marker = _Marker()
            self._queue.append(marker)
            self._wake.set()
            deadline = None if timeout is None else time.monotonic() + timeout
            while not marker.done.wait(0.2):
                if not self._alive():
                    self._drain()  # the thread is gone (interpreter shutdown): write here
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise Unavailable(f"metric points were not written within {timeout} s")
        elif self._queue:
            self._drain()  # no thread (closed, or forked child): write here
        self._raise_pending_error()

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            error, lost = self._error, self._lost
            self._error, self._lost = None, 0
            raise type(error)(f"{lost} metric points could not be written: {error.message}")

    # -- heartbeats -----------------------------------------------------------------

    def keep_alive(self, job_id: int) -> None:
        self._beating.add(job_id)
        if self._thread is None:
            self._start()

    def let_go(self, job_id: int) -> None:
        self._beating.discard(job_id)

    # -- the writer thread ----------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                thread = threading.Thread(target=self._run, name="keel-metric-writer", daemon=True)
                self._thread = thread
                thread.start()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            self._drain()
            self._beat_if_due()
            if self._closed and not self._queue:
                return

    def _drain(self) -> None:
        while self._queue:
            batch: list[PendingPoint] = []
            markers: list[_Marker] = []
            popleft = self._queue.popleft
            while self._queue and len(batch) < self._batch_size:
                item = popleft()
                if isinstance(item, _Marker):
                    markers.append(item)
                    break  # honour the marker before taking later points
                batch.append(item)
            self._write(batch)
            for marker in markers:
                marker.done.set()

    def _write(self, batch: list[PendingPoint]) -> None:
        """Write one batch, retrying a busy database; a batch that cannot be written is
        dropped and reported by the next flush, so the thread itself never dies."""
        if not batch:
            return
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                write_metrics(self._store, batch)
                return
            except Unavailable as exc:
                if attempt == _WRITE_ATTEMPTS - 1:
                    self._drop(batch, exc)
                    return
                time.sleep(0.5 * (attempt + 1))
            except Exception as exc:  # not transient (e.g. the job was deleted): no retry
                detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                self._drop(batch, exc if isinstance(exc, KeelError) else Unavailable(detail))
                return

    def _drop(self, batch: list[PendingPoint], error: KeelError) -> None:
        self._error, self._lost = error, self._lost + len(batch)
        _log.error("dropped %d metric points: %s", len(batch), error.message)

    def _beat_if_due(self) -> None:
        now = time.monotonic()
        if self._beating and now - self._last_beat >= self._heartbeat_interval:
            self._last_beat = now
            try:
                job_ops.heartbeat(self._store, set(self._beating))
            except KeelError as exc:
                _log.warning("heartbeat failed: %s", exc.message)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._queue:
            self._drain()

    def _forget_thread_after_fork(self) -> None:
        self._thread = None
        self._queue = deque()
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._beating = set()


_WRITERS: weakref.WeakSet[MetricWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer._forget_thread_after_fork()


def close_all_writers() -> None:
    for writer in list(_WRITERS):
        try:
            writer.close()
        except KeelError as exc:  # pragma: no cover - interpreter exit, nothing to raise to
            _log.error("could not write queued metrics at exit: %s", exc.message)


register_at_fork: Callable[..., None] = os.register_at_fork
register_at_fork(after_in_child=_after_fork_in_child)
