"""Many small local files, moved by forked child processes beside the recording parent.

Copying a small local file is a handful of system calls and a little Python around
them. Threads cannot share that work (every system call hands the GIL back and
forth), but processes can: the kernel's file creation scales across cores, and so
does the Python. The parent forks ``processes`` children after the plan is saved;
each copies its share of the plan with the same :class:`~keel.data.copy.transfer.Transfer`
the parent would use, and streams one line per finished file back through
a pipe. The parent records those outcomes as they arrive (status batches, counters,
the manifest, the progress bar), so a ``kill -9`` loses no more than with one process:
files landed but not yet recorded are adopted by ``--resume``.

Forking happens from the main thread only (a copy that runs as a pipeline step, beside
other steps' threads, uses threads instead). Stopping is cooperative: a byte in a
shared page tells the children to stop between files, so every file that lands is
reported. Children die with the parent (``PR_SET_PDEATHSIG``), ignore Ctrl-C (the
parent decides), touch neither the database nor the terminal, and leave with
``os._exit``. A child that dies anyway
leaves its unreported files pending; the parent copies those itself.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import selectors
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from keel.data.copy.plan import PENDING, Item
from keel.data.copy.transfer import Outcome, Transfer

FORK_MIN_FILES = 1_000  # below this a fork costs more than the second core saves
_DEAL = 64  # consecutive items per share dealt to a child: files of one folder stay together
_SEND_EVERY = 128  # outcomes per write to the pipe
_SEND_SECONDS = 0.05
_PR_SET_PDEATHSIG = 1

Apply = Callable[[Item, Outcome], None]


def can_fork() -> bool:
    return hasattr(os, "fork")


def shares(count: int, processes: int) -> list[list[int]]:
    """Item indexes per child: runs of ``_DEAL`` consecutive items dealt in turn."""
    dealt: list[list[int]] = [[] for _ in range(processes)]
    for start in range(0, count, _DEAL):
        dealt[(start // _DEAL) % processes].extend(range(start, min(start + _DEAL, count)))
    return dealt


def run_forked(
    transfer: Transfer,
    items: Sequence[Item],
    processes: int,
    *,
    apply: Apply,
    should_stop: Callable[[], bool],
    tick: Callable[[], None],
) -> bool:
    """Copy ``items`` in ``processes`` children; ``apply`` records each outcome here.

    ``should_stop`` is asked between reads (cancel); ``tick`` lets the caller flush its
    batches. Returns False when stopped early. Items no child reported stay pending.
    """
    return _Forked(transfer, items, apply, should_stop, tick).run(processes)


def unreported(items: Sequence[Item]) -> list[Item]:
    return [item for item in items if item.status == PENDING]


class _Forked:
    def __init__(
        self,
        transfer: Transfer,
        items: Sequence[Item],
        apply: Apply,
        should_stop: Callable[[], bool],
        tick: Callable[[], None],
    ) -> None:
        self.transfer = transfer
        self.items = items
        self.apply = apply
        self.should_stop = should_stop
        self.tick = tick
        self.stop = mmap.mmap(-1, mmap.PAGESIZE)  # shared with the children: 1 asks them to stop
        self.children: dict[int, int] = {}  # read end of a child's pipe -> its pid

    def run(self, processes: int) -> bool:
        parent = os.getpid()
        try:
            for share in shares(len(self.items), processes):
                read, write = os.pipe()
                pid = _fork()
                if pid == 0:  # the child: never returns
                    os.close(read)
                    self._child(share, write, parent)
                os.close(write)
                self.children[read] = pid
            return not self._collect()
        except KeyboardInterrupt:  # Ctrl-C: the children finish their file; record what landed
            self.stop[0] = 1
            self._collect()
            raise
        except BaseException:
            self.stop[0] = 1
            self._reap()
            raise
        finally:
            self.stop.close()

    def _collect(self) -> bool:
        """Record outcomes until every child is done; True when asked to stop."""
        stopped = False
        partial = dict.fromkeys(self.children, b"")
        with selectors.DefaultSelector() as selector:
            for fd in self.children:
                selector.register(fd, selectors.EVENT_READ)
            while self.children:
                for key, _ in selector.select(timeout=0.1):
                    fd = key.fd
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        selector.unregister(fd)
                        os.close(fd)
                        os.waitpid(self.children.pop(fd), 0)
                        continue
                    *lines, partial[fd] = (partial[fd] + chunk).split(b"\n")
                    for line in lines:
                        index, outcome = _decode(line)
                        self.apply(self.items[index], outcome)
                if not stopped and self.should_stop():
                    self.stop[0] = 1
                    stopped = True
                self.tick()
        return stopped

    def _reap(self) -> None:
        for fd, pid in self.children.items():
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def _child(self, share: list[int], pipe: int, parent: int) -> NoReturn:
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with(parent)
            out: list[bytes] = []
            sent_at = time.monotonic()
            for index in share:
                if self.stop[0]:
                    break
                out.append(_encode(index, self.transfer.run(self.items[index])))
                if len(out) >= _SEND_EVERY or time.monotonic() - sent_at >= _SEND_SECONDS:
                    _send(pipe, out)
                    out, sent_at = [], time.monotonic()
            _send(pipe, out)
        except BaseException:  # the parent copies whatever this child did not report
            code = 1
        finally:
            os._exit(code)


def _fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock the child if it takes
        # a lock another thread held. The engine forks from the main thread only, and a child
        # takes none of the parent's locks: it reads and writes files, hashes, and writes to
        # its pipe; it never touches the database, the terminal or the logs.
        warnings.filterwarnings(
            "ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning
        )
        return os.fork()


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this child when the parent dies (a ``kill -9`` of the copy)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _send(pipe: int, lines: list[bytes]) -> None:
    data = memoryview(b"".join(lines))
    while data:
        data = data[os.write(pipe, data) :]


def _encode(index: int, outcome: Outcome) -> bytes:
    """One line, tab-separated; the error (free text) is JSON, which escapes tabs and newlines."""
    error = "" if outcome.error is None else json.dumps(outcome.error)
    fields = (
        str(index),
        outcome.status,
        outcome.digest or "",
        error,
        str(outcome.sent),
        "1" if outcome.restarted else "",
        "1" if outcome.adopted else "",
        outcome.store_hash or "",
    )
    return "\t".join(fields).encode() + b"\n"


def _decode(line: bytes) -> tuple[int, Outcome]:
    index, status, digest, error, sent, restarted, adopted, store_hash = line.decode().split("\t")
    outcome = Outcome(
        status,
        digest or None,
        json.loads(error) if error else None,
        int(sent),
        bool(restarted),
        bool(adopted),
        store_hash or None,
    )
    return int(index), outcome
