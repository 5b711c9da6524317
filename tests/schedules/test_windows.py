"""Tumbling windows: where they fall, when they are due, what a dependency covers, cycles."""

from __future__ import annotations

from keel.schedules.windows import Dependency, WindowPlan, dependency_range, find_cycle

HOUR = 3_600_000


def test_windows_are_contiguous_and_due_after_their_delay() -> None:
    plan = WindowPlan(start=0, length=HOUR, end=5 * HOUR, delay=600_000)
    assert plan.window_at(2) == (2 * HOUR, 3 * HOUR)
    assert plan.due_until(HOUR + 599_999) == 0
    assert plan.due_until(HOUR + 600_000) == 1
    assert plan.due_until(100 * HOUR) == 5  # no window past the end time
    assert not plan.exists(5) and plan.exists(4) and not plan.exists(-1)


def test_windows_between_and_overlapping() -> None:
    plan = WindowPlan(start=0, length=HOUR)
    assert [w[0] // HOUR for w in plan.windows_between(HOUR // 2, 4 * HOUR)] == [1, 2, 3]
    assert [w[0] // HOUR for w in plan.overlapping(HOUR // 2, 2 * HOUR + 1)] == [0, 1, 2]
    assert plan.overlapping(-3 * HOUR, 0) == []  # nothing before the first window


def test_a_dependency_range_is_an_offset_and_a_size() -> None:
    assert dependency_range(10 * HOUR, HOUR, Dependency(offset_ms=-HOUR)) == (9 * HOUR, 10 * HOUR)
    assert dependency_range(10 * HOUR, HOUR, Dependency(offset_ms=0, size_ms=3 * HOUR)) == (
        10 * HOUR,
        13 * HOUR,
    )


def test_cycles_are_found_and_named() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
