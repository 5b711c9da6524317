"""The scheduler: mini-batches over a worker pool, with retries, timeouts and an error threshold.

One loop in the driver hands the next mini-batch to each idle worker, collects
answers, and decides:

* an attempt that fails (an exception in ``run``, a worker that dies, or one that runs
  past ``retry_settings.timeout`` and is killed with everything it started) goes back
  to the end of the queue until it has had ``max_retries`` retries;
* a mini-batch out of retries counts its items (files, or rows) against
  ``error_threshold``; past it the run stops at once (``-1``: never);
* a successful mini-batch's part goes to the output assembler.

What happens is told to an :class:`Observer` (the job's records, log and metrics),
so this module knows nothing of jobs or databases.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from keel.endpoints.batch.output import Assembled, Assembler, AssemblyError
from keel.endpoints.batch.planning import MiniBatch, Plan
from keel.endpoints.batch.pool import Died, WorkerPool
from keel.endpoints.batch.specs import Settings
from keel.endpoints.batch.worker import Assignment, InitFailed, Ready, Scored

_POLL_SECONDS = 0.25
_AFFINITY_WINDOW = 64  # how far down the queue a worker looks for its row group's next mini-batch


@dataclass(frozen=True)
class Outcome:
    """How one mini-batch ended."""

    batch: MiniBatch
    status: str  # "completed" | "failed"
    attempts: int
    output_rows: int = 0
    seconds: float = 0.0
    error: str | None = None


class Observer(Protocol):
    def attempt_failed(self, batch: MiniBatch, attempt: int, error: str, *, retrying: bool) -> None: ...

    def ended(self, outcome: Outcome) -> None: ...

    def stop_requested(self) -> str | None: ...


@dataclass
class Summary:
    """How the whole run ended."""

    status: str  # "completed" | "failed" | "canceled"
    reason: str | None = None
    completed: int = 0
    failed: int = 0
    items_completed: int = 0
    items_failed: int = 0
    output: Assembled | None = None
    failures: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Running:
    batch: MiniBatch
    attempt: int
    deadline: float


class Scheduler:
    """Runs one plan to the end over ``pool``; ``assembler`` is None for ``summary_only``."""

    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        pool: WorkerPool,
        observer: Observer,
        assembler: Assembler | None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.pool = pool
        self.observer = observer
        self.assembler = assembler
        self.pending: deque[tuple[MiniBatch, int]] = deque((batch, 1) for batch in plan.batches)
        self.running: dict[int, _Running] = {}
        # The next mini-batch of a busy slot, whose rows its worker reads while it scores the current one.
        self.reserved: dict[int, tuple[MiniBatch, int]] = {}
        self.reads_ahead = plan.mode == "rows"
        self.last_group: dict[int, int] = {}  # the row group each slot's worker read last
        self.idle: list[int] = []
        self.starting: set[int] = set()
        self.summary = Summary(status="completed")
        self._stop_checked = 0.0

    def run(self) -> Summary:
        started = time.monotonic()
        if self.assembler is not None:
            self.assembler.start()
        self.pool.start()
        self.starting = set(range(self.pool.size))
        try:
            self._loop()
        finally:
            self._shut_down()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while self.summary.status == "completed" and (self.pending or self.running or self.reserved):
            self._dispatch()
            for slot, message in self.pool.poll(self._wait_budget()):
                self._receive(slot, message)
            self._expire()
            self._check_stop()
            if self.assembler is not None and self.assembler.error is not None:
                self._stop("failed", _assembly_reason(self.assembler.error))

    def _dispatch(self) -> None:
        while self.idle:
            slot = self.idle[-1]
            chosen = self.reserved.pop(slot, None) or self._next_pending(slot)
            if chosen is None:
                return
            self.idle.pop()
            batch, attempt = chosen
            ahead = self._take_pending(batch.group, slot) if self.reads_ahead else None
            if ahead is not None:
                self.reserved[slot] = ahead
            self.running[slot] = _Running(batch, attempt, time.monotonic() + self.settings.timeout)
            self.last_group[slot] = (ahead[0] if ahead else batch).group
            self.pool.send(slot, Assignment(batch, ahead[0] if ahead else None))

    def _next_pending(self, slot: int) -> tuple[MiniBatch, int] | None:
        """The next mini-batch for ``slot``: from the queue (one of the row group its worker read
        last, if any is near the head), else one reserved for a busy slot (taken over)."""
        found = self._take_pending(self.last_group.get(slot, -1), slot)
        if found is not None:
            return found
        for other in list(self.reserved):
            return self.reserved.pop(other)
        return None

    def _take_pending(self, group: int, slot: int) -> tuple[MiniBatch, int] | None:
        """Among the next few in the queue: a mini-batch of row group ``group`` (the worker has it
        read), else one of a group no other worker is reading, else the head."""
        if not self.pending:
            return None
        window = list(itertools.islice(self.pending, _AFFINITY_WINDOW))
        if window[0][0].group < 0:
            return self.pending.popleft()
        taken = {g for other, g in self.last_group.items() if other != slot}
        for wanted in (lambda g: g == group, lambda g: g not in taken):
            for index, (batch, _) in enumerate(window):
                if wanted(batch.group):
                    found = self.pending[index]
                    del self.pending[index]
                    return found
        return self.pending.popleft()

    def _release(self, slot: int) -> None:
        """A slot's worker is gone: its reserved mini-batch goes back to the head of the queue."""
        reserved = self.reserved.pop(slot, None)
        if reserved is not None:
            self.pending.appendleft(reserved)

    def _wait_budget(self) -> float:
        if not self.running:
            return _POLL_SECONDS
        soonest = min(entry.deadline for entry in self.running.values())
        return max(0.0, min(_POLL_SECONDS, soonest - time.monotonic()))

    def _receive(self, slot: int, message: Any) -> None:
        if isinstance(message, Ready):
            self.starting.discard(slot)
            self.idle.append(slot)
        elif isinstance(message, InitFailed):
            self._stop("failed", f"the scoring script's init() failed: {message.error}")
        elif isinstance(message, Scored):
            entry = self.running.pop(slot, None)
            if entry is None or entry.batch.number != message.number:
                return  # an answer from a worker already given up on
            self.idle.append(slot)
            if message.error is None:
                self._succeeded(entry, message)
            else:
                self._attempt_failed(entry, message.error, message.seconds)
        elif isinstance(message, Died):
            entry = self.running.pop(slot, None)
            if slot in self.idle:
                self.idle.remove(slot)
            self._release(slot)
            was_starting = slot in self.starting
            self.starting.discard(slot)
            if was_starting and entry is None:
                self._stop("failed", f"a worker could not start: {message.describe()}")
                return
            self.pool.replace(slot)
            self.starting.add(slot)
            if entry is not None:
                self._attempt_failed(entry, message.describe(), None)

    def _expire(self) -> None:
        now = time.monotonic()
        for slot, entry in list(self.running.items()):
            if now >= entry.deadline:
                del self.running[slot]
                self._release(slot)
                self.pool.replace(slot)  # kills the worker's whole process group
                self.starting.add(slot)
                timeout = self.settings.timeout
                self._attempt_failed(entry, f"timed out after {timeout:g} s (the worker was killed)", timeout)

    def _check_stop(self) -> None:
        now = time.monotonic()
        if now - self._stop_checked < 0.5:
            return
        self._stop_checked = now
        reason = self.observer.stop_requested()
        if reason is not None:
            self._stop("canceled", reason)

    # -- outcomes ------------------------------------------------------------------------------

    def _succeeded(self, entry: _Running, message: Scored) -> None:
        batch = entry.batch
        if self.assembler is not None and message.part is not None:
            self.assembler.add(batch.number, Path(message.part), message.columns, message.rows)
        self.summary.completed += 1
        self.summary.items_completed += batch.items
        outcome = Outcome(batch, "completed", entry.attempt, message.rows, message.seconds)
        self.observer.ended(outcome)

    def _attempt_failed(self, entry: _Running, error: str, seconds: float | None) -> None:
        batch, attempt = entry.batch, entry.attempt
        retrying = attempt <= self.settings.max_retries
        self.observer.attempt_failed(batch, attempt, error, retrying=retrying)
        if retrying:
            self.pending.append((batch, attempt + 1))
            return
        if self.assembler is not None:
            self.assembler.skip(batch.number)
        outcome = Outcome(batch, "failed", attempt, seconds=seconds or 0.0, error=error)
        self.summary.failed += 1
        self.summary.items_failed += batch.items
        self.summary.failures.append(outcome)
        self.observer.ended(outcome)
        threshold = self.settings.error_threshold
        if threshold >= 0 and self.summary.items_failed > threshold:
            self._stop("failed", self._threshold_reason())

    def _threshold_reason(self) -> str:
        unit = self.plan.unit
        first = self.summary.failures[0]
        return (
            f"{self.summary.items_failed} {unit} failed, more than error_threshold "
            f"({self.settings.error_threshold}); first: mini-batch {first.batch.number} "
            f"({first.batch.describe()}) after {first.attempts} attempts: {first.error}"
        )

    def _stop(self, status: str, reason: str) -> None:
        if self.summary.status == "completed":
            self.summary.status, self.summary.reason = status, reason

    # -- the end -------------------------------------------------------------------------------

    def _shut_down(self) -> None:
        if self.summary.status == "completed":
            self.pool.close()
        else:
            _kill_all(self.pool)
        if self.summary.status == "completed" and self.summary.completed == 0 and self.summary.failed:
            first = self.summary.failures[0]
            self._stop("failed", f"every mini-batch failed; the first: {first.error}")
        if self.assembler is None:
            return
        if self.summary.status != "completed":
            self.assembler.abort()
            return
        try:
            self.summary.output = self.assembler.finish()
        except Exception as exc:  # the parts could not be put together: the job fails saying why
            self._stop("failed", _assembly_reason(exc))


def _kill_all(pool: WorkerPool) -> None:
    kill = getattr(pool, "kill_all", None)
    if callable(kill):
        kill()
    else:
        pool.close()


def _assembly_reason(error: BaseException) -> str:
    if isinstance(error, AssemblyError):
        return f"the output could not be assembled: {error}"
    return f"the output could not be written: {type(error).__name__}: {error}"
