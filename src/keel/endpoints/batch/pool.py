"""Where mini-batches run: a pool of worker slots, each holding one worker at a time.

:class:`WorkerPool` is the executor interface the driver schedules over (a Ray
executor can implement it with actors); :class:`LocalProcesses` is the local one:
``instance_count`` times ``max_concurrency_per_instance`` forked processes, each in its own
process group. Forking (not spawning) matters for speed: a worker starts in
milliseconds with pandas, pyarrow and the opened model already in memory, instead
of paying seconds of imports and a second model load.

A slot's worker can be replaced: a mini-batch that runs past its timeout has its
whole process group killed and a fresh worker (running ``init()`` again) takes the slot.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

from keel.endpoints.batch.worker import Assignment

_STOP_GRACE_SECONDS = 3.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Died:
    """The slot's worker ended without answering (crashed, killed, out of memory)."""

    exit_code: int | None

    def describe(self) -> str:
        if self.exit_code is not None and self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = f"signal {-self.exit_code}"
            return f"the worker process was killed by {name}"
        return f"the worker process exited with code {self.exit_code} while scoring"


class WorkerPool(Protocol):
    """Slots that each score one mini-batch at a time; messages come back through ``poll``."""

    size: int

    def start(self) -> None: ...

    def send(self, slot: int, assignment: Assignment) -> None: ...

    def poll(self, timeout: float) -> list[tuple[int, Any]]: ...

    def replace(self, slot: int) -> None: ...

    def close(self) -> None: ...


# serve(connection, slot number) -> None: a worker's whole life (see keel.endpoints.batch.worker.serve)
WorkerMain = Callable[[Connection, int], None]


class LocalProcesses:
    """Forked worker processes on this machine."""

    def __init__(self, size: int, main: WorkerMain) -> None:
        self.size = size
        self._main = main
        self._context = multiprocessing.get_context("fork")
        self._processes: list[Any] = [None] * size
        self._connections: list[Connection | None] = [None] * size

    def start(self) -> None:
        for slot in range(self.size):
            self._start(slot)

    def _start(self, slot: int) -> None:
        ours, theirs = self._context.Pipe(duplex=True)
        others = [c for i, c in enumerate(self._connections) if c is not None and i != slot]
        process = self._context.Process(
            target=_child, args=(self._main, theirs, slot, [ours, *others], os.getpid()), daemon=True
        )
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock the child if it
            # takes a lock another thread held. A worker takes none of the driver's locks: it
            # reads files, computes and writes files, and never touches the database.
            warnings.filterwarnings(
                "ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning
            )
            process.start()
        theirs.close()
        self._processes[slot] = process
        self._connections[slot] = ours

    def send(self, slot: int, assignment: Assignment) -> None:
        connection = self._connections[slot]
        if connection is not None:
            connection.send(assignment)

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        """Messages from workers, and ``Died`` for a slot whose worker ended; waits up to ``timeout``."""
        readable: dict[Any, int] = {}
        for slot, (connection, process) in enumerate(zip(self._connections, self._processes, strict=True)):
            if connection is not None and process is not None:
                readable[connection] = slot
                readable[process.sentinel] = slot
        if not readable:
            time.sleep(timeout)
            return []
        events: list[tuple[int, Any]] = []
        dead: set[int] = set()
        for ready in wait(list(readable), timeout):
            slot = readable[ready]
            if isinstance(ready, Connection):
                try:
                    events.append((slot, ready.recv()))
                except (EOFError, OSError):
                    dead.add(slot)
            else:
                dead.add(slot)
        for slot in sorted(dead):
            connection = self._connections[slot]
            while connection is not None and _has_data(connection):  # its last words come first
                try:
                    events.append((slot, connection.recv()))
                except (EOFError, OSError):
                    break
            process = self._processes[slot]
            process.join(1.0)
            events.append((slot, Died(process.exitcode)))
            self._forget(slot)
        return events

    def replace(self, slot: int) -> None:
        """Kill the slot's worker (and everything it started) and start a fresh one."""
        self._kill(slot)
        self._start(slot)

    def close(self) -> None:
        """Ask every worker to stop, then stop the ones that do not."""
        for connection in self._connections:
            if connection is not None:
                with contextlib.suppress(OSError, ValueError):
                    connection.send(None)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for slot, process in enumerate(self._processes):
            if process is not None:
                process.join(max(0.0, deadline - time.monotonic()))
                self._kill(slot)

    def kill_all(self) -> None:
        """Stop every worker now (a cancel, or an error threshold crossed)."""
        for slot in range(self.size):
            self._kill(slot)

    def _kill(self, slot: int) -> None:
        process = self._processes[slot]
        if process is not None:
            if process.exitcode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            process.join(5.0)
        self._forget(slot)

    def _forget(self, slot: int) -> None:
        connection = self._connections[slot]
        if connection is not None:
            connection.close()
        process = self._processes[slot]
        if process is not None and process.exitcode is not None:
            process.close()
        self._connections[slot] = None
        self._processes[slot] = None


def _has_data(connection: Connection) -> bool:
    try:
        return connection.poll(0)
    except (EOFError, OSError):
        return False


def _child(
    main: WorkerMain, connection: Connection, slot: int, not_ours: list[Connection], driver: int
) -> None:
    """In the forked child: die with the driver, drop the driver's ends of every pipe, serve."""
    _die_with(driver)
    for other in not_ours:
        with contextlib.suppress(OSError):
            other.close()
    main(connection, slot)


def _die_with(driver: int) -> None:
    """On Linux the kernel kills the worker when the driver dies, so no orphan keeps scoring;
    elsewhere a worker notices when its pipe closes."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != driver:  # the driver died before that took effect
        os._exit(1)
