"""Tumbling windows: fixed, contiguous, non-overlapping intervals from a start time.

Windows are in UTC and fixed-length (a day is 24 hours), as in Data Factory. A
window ``[start, end)`` becomes due at ``end + delay``. A dependency names a range
relative to the window — ``offset`` from its start, ``size`` long (default: the
window's own size) — on the schedule's own earlier windows or on another tumbling
schedule; the window may run once every window of that schedule overlapping the
range has completed. Windows before the other schedule's start need nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from keel.schedules.timing import MS_PER


@dataclass(frozen=True)
class Dependency:
    """``schedule`` None means the schedule's own earlier windows."""

    offset_ms: int
    size_ms: int | None = None
    schedule: str | None = None


@dataclass(frozen=True)
class WindowPlan:
    """Where a tumbling schedule's windows fall."""

    start: int
    length: int
    end: int | None = None
    delay: int = 0

    @classmethod
    def of(cls, frequency: str, interval: int, start: int, end: int | None, delay: int) -> WindowPlan:
        return cls(start=start, length=MS_PER[frequency] * interval, end=end, delay=delay)

    def window_at(self, index: int) -> tuple[int, int]:
        start = self.start + index * self.length
        return start, start + self.length

    def index_of(self, instant: int) -> int:
        """The window containing ``instant`` (negative before the first)."""
        return (instant - self.start) // self.length

    def exists(self, index: int) -> bool:
        return index >= 0 and (self.end is None or self.window_at(index)[1] <= self.end)

    def due_at(self, index: int) -> int:
        return self.window_at(index)[1] + self.delay

    def due_until(self, now: int) -> int:
        """How many windows (from the first) are due at ``now``."""
        if now < self.due_at(0):
            return 0
        count = (now - self.delay - self.start) // self.length
        if self.end is not None:
            count = min(count, (self.end - self.start) // self.length)
        return max(0, count)

    def windows_between(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Windows that fit wholly in ``[start, end)``, oldest first."""
        index = max(0, -(-(start - self.start) // self.length))
        while self.exists(index):
            window = self.window_at(index)
            if window[1] > end:
                return
            yield window
            index += 1

    def overlapping(self, start: int, end: int) -> list[tuple[int, int]]:
        """This schedule's windows that overlap ``[start, end)`` (none before its start)."""
        first = max(0, self.index_of(start))
        found = []
        index = first
        while self.exists(index):
            window = self.window_at(index)
            if window[0] >= end:
                break
            if window[1] > start:
                found.append(window)
            index += 1
        return found


def dependency_range(window_start: int, window_length: int, dependency: Dependency) -> tuple[int, int]:
    start = window_start + dependency.offset_ms
    return start, start + (dependency.size_ms or window_length)


def find_cycle(graph: Mapping[str, Sequence[str]], *, first: str | None = None) -> list[str] | None:
    """A cycle among schedules that depend on each other, as a path that closes, or None
    (searched from ``first`` first, so a cycle it closes is named from it)."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for upstream in graph.get(name, ()):
            cycle = visit(upstream, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    for name in ([first] if first else []) + sorted(graph):
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None
