"""Running a plan: worker threads move files, one main thread records and reports.

Workers take items from a shared deque and put each outcome on a queue; they
never touch the database or the progress bar. The main thread applies outcomes:
counters, the progress bar, the job log, and status changes batched into one
transaction every half second (see :mod:`keel.data.copy.plan`). Threads suit the
work: ``copy_file_range``, ``pread``, SHA-256 and network waits all release the GIL.
Many small local files are the exception: threads would only pass the GIL around
their system calls, so forked processes move them instead (:mod:`keel.data.copy.forked`)
while the main thread records. With a concurrency of one there are no workers: the
main thread moves each file itself and records it, in the same order.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from keel.data.copy.forked import FORK_MIN_FILES, can_fork, run_forked, unreported
from keel.data.copy.listing import label, store_kind
from keel.data.copy.manifests import ManifestBuilder
from keel.data.copy.plan import DONE, SKIPPED, Item, StatusBatch
from keel.data.copy.progress import Counters, Reporter
from keel.data.copy.records import JobLog
from keel.data.copy.transfer import Outcome, Transfer
from keel.data.datastores import storage_errors
from keel.data.locations import Location
from keel.store import Store

# Local to local, two at a time. Small files are bound by the kernel's file creation and the
# Python around it; two threads did not speed them up (they hand the GIL back and forth around
# every system call: 10,000 files of 4 KiB, the whole command, 1.26 s one at a time and 1.47 s
# with two threads), two forked processes do (the raw loop: 2.8 s against 5.6 s on a loaded
# disk). Files of some size are bound by SHA-256 or the kernel's copy, which release the GIL,
# and two threads use both cores (20 files of 50 MiB, hashed: 0.52 s against 0.8 to 1.5 s one at
# a time). A single large file's hash has its own thread.
LOCAL_CONCURRENCY = 2
LOCAL_PARALLEL_SIZE = 1 << 20  # the mean planned file size from which local copies use threads
REMOTE_CONCURRENCY = 16
_POLL_SECONDS = 0.1
_BATCH = 256
_BATCH_SECONDS = 0.05
_FORKED_FLUSH_ROWS = 2048


@dataclass
class Problems:
    """Files that failed or were skipped in this attempt: (path, reason)."""

    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def default_concurrency(transfer: Transfer, items: Sequence[Item]) -> int:
    if not _all_local(transfer):
        return REMOTE_CONCURRENCY
    if _small_files(items) and len(items) < FORK_MIN_FILES:
        return 1  # a few small files: the calling thread alone, no fork
    return LOCAL_CONCURRENCY


def _all_local(transfer: Transfer) -> bool:
    kinds = {store_kind(tree.location.fs) for tree in transfer.sources} | {transfer.dst_kind}
    return kinds == {"local"}


def _small_files(items: Sequence[Item]) -> bool:
    return sum(item.size for item in items) < LOCAL_PARALLEL_SIZE * max(1, len(items))


def forks(transfer: Transfer, items: Sequence[Item], workers: int) -> bool:
    """Whether small local files go to forked processes.

    Not under a bandwidth limit (it would hold per process), and only from the main
    thread: a copy running as a pipeline step shares its process with other steps'
    threads, one of which could hold a lock a child would need (see :mod:`keel.data.copy.forked`).
    """
    return (
        workers > 1
        and can_fork()
        and threading.current_thread() is threading.main_thread()
        and transfer.throttle is None
        and _all_local(transfer)
        and _small_files(items)
    )


class Engine:
    """Moves ``items`` with ``transfer``; ``run`` returns when all are done or it was stopped."""

    def __init__(
        self,
        store: Store,
        job_id: int,
        transfer: Transfer,
        items: Sequence[Item],
        *,
        counters: Counters,
        reporter: Reporter,
        log: JobLog,
        concurrency: int | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.transfer = transfer
        self.items = deque(items)
        self.counters = counters
        self.reporter = reporter
        self.log = log
        self.problems = Problems()
        self.manifest = ManifestBuilder()
        self.batch = StatusBatch(store, job_id)
        self.threads = min(concurrency or default_concurrency(transfer, items), len(self.items))
        self.forked = forks(transfer, items, self.threads)
        self.cancel = cancel or threading.Event()
        self.stopping = threading.Event()
        self.results: queue.SimpleQueue[list[tuple[Item, Outcome]] | None] = queue.SimpleQueue()

    def run(self) -> bool:
        """Copy everything; returns False when stopped early (cancel or Ctrl-C)."""
        if self.forked:
            return self._run_forked()
        if self.threads <= 1:
            return self._run_here()
        workers = [
            threading.Thread(target=self._work, name=f"keel-copy-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        try:
            self._collect(len(workers))
        except BaseException:
            self.stopping.set()
            for worker in workers:
                worker.join()
            self._drain()
            raise
        finally:
            self.batch.flush()
        return not self.stopping.is_set()

    def _run_here(self) -> bool:
        """One file at a time, in this thread: no worker to hand files and outcomes to, so no
        thread waits for the GIL while another holds it between two system calls."""
        try:
            while self.items:
                if self._canceled():
                    break
                item = self.items.popleft()
                self._apply(item, self.transfer.run(item))
                self.batch.flush_if_due()
        finally:
            self.batch.flush()
        return not self.stopping.is_set()

    def _run_forked(self) -> bool:
        """Child processes copy; this thread records, then copies what no child reported."""
        items = list(self.items)
        self.items.clear()
        try:
            finished = run_forked(
                self.transfer,
                items,
                self.threads,
                apply=self._apply,
                should_stop=self._canceled,
                # Smaller batches than usual: written while the children copy, not after them.
                tick=lambda: self.batch.flush_if_due(_FORKED_FLUSH_ROWS),
            )
        finally:
            self.batch.flush()
        if not finished:
            return False
        self.items.extend(unreported(items))  # a child that died: its files are copied here
        return self._run_here()

    def _canceled(self) -> bool:
        """Whether to stop: canceled now (said once in the job's log) or before."""
        if self.cancel.is_set() and not self.stopping.is_set():
            self.log.write("stopping: the copy was canceled")
            self.stopping.set()
        return self.stopping.is_set()

    def _work(self) -> None:
        """Copy items until none are left; outcomes go to the main thread in batches (a wake-up
        per file would have it contend for the GIL with the workers 10,000 times)."""
        done: list[tuple[Item, Outcome]] = []
        sent_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                try:
                    item = self.items.popleft()
                except IndexError:
                    return
                done.append((item, self.transfer.run(item)))
                if len(done) >= _BATCH or time.monotonic() - sent_at >= _BATCH_SECONDS:
                    self.results.put(done)
                    done, sent_at = [], time.monotonic()
        finally:
            if done:
                self.results.put(done)
            self.results.put(None)

    def _collect(self, running: int) -> None:
        while running:
            try:
                results = self.results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                pass
            else:
                if results is None:
                    running -= 1
                else:
                    for item, outcome in results:
                        self._apply(item, outcome)
            self._canceled()
            self.batch.flush_if_due()

    def _drain(self) -> None:
        """Record what finished while stopping (workers are joined by now)."""
        while True:
            try:
                results = self.results.get_nowait()
            except queue.Empty:
                return
            for item, outcome in results or []:
                self._apply(item, outcome)

    def _apply(self, item: Item, outcome: Outcome) -> None:
        item.status, item.digest, item.error = outcome.status, outcome.digest, outcome.error
        self.batch.add(item)
        c = self.counters
        if outcome.status == DONE:
            self.manifest.add(item.path, item.size, item.stamp, outcome.digest)
            if outcome.adopted:
                c.files_adopted += 1
            else:
                c.files_copied += 1
                c.bytes_copied += outcome.sent
            if outcome.restarted:
                c.files_restarted += 1
                c.bytes_restarted += outcome.sent
            if outcome.store_hash:
                c.store_hash_checked += 1
        elif outcome.status == SKIPPED:
            c.files_skipped += 1
            self.problems.skipped.append((item.path, outcome.error or ""))
            self.log.write(f"skipped {item.path}: {outcome.error}")
        else:
            c.files_failed += 1
            self.problems.failed.append((item.path, outcome.error or ""))
            self.log.write(f"failed {item.path}: {outcome.error}")
        self.reporter.advance(1, item.size)


def delete_extras(destination: Location, paths: Sequence[str], log: JobLog) -> int:
    """Delete the destination files a sync found the source does not have; returns how many."""
    if not paths:
        return 0
    root = destination.path.rstrip("/")
    with storage_errors(label(destination)):
        if store_kind(destination.fs) == "local":
            for path in paths:
                try:
                    os.unlink(f"{root}/{path}")
                except FileNotFoundError:
                    continue
                log.write(f"deleted {path}")
            return len(paths)
        for start in range(0, len(paths), 256):
            chunk = list(paths[start : start + 256])
            destination.fs.rm([f"{root}/{path}" for path in chunk])
            for path in chunk:
                log.write(f"deleted {path}")
    return len(paths)


def failure_reason(counters: Counters, problems: Problems) -> str:
    first = problems.failed[0] if problems.failed else ("", "")
    count = counters.files_failed
    return f"{count} file{'s' if count != 1 else ''} failed; the first: {first[0]}: {first[1]}"
