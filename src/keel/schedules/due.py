"""Clock triggers: when a schedule is next due, and which fires a due schedule claims.

Cron and recurrence schedules fire at their occurrences; a tumbling-window schedule
claims each window when it is due (its end plus the delay). After downtime the
missed occurrences are handled by ``catchup``: ``all`` claims each (oldest first),
``latest`` only the most recent, ``none`` only one still within a minute of its time.
Windows passed over are recorded as ``skipped`` so that windows depending on them
are not held up forever.
"""

from __future__ import annotations

from typing import Any

from keel.schedules.fires import FireState, NewFire
from keel.schedules.jobs import base_values
from keel.schedules.records import Schedule
from keel.schedules.timing import Cron, Recurrence, iso, time_zone
from keel.schedules.windows import Dependency, WindowPlan

MISFIRE_GRACE_MS = 60_000
MAX_FIRES_PER_TICK = 10_000


def occurrences(trigger: dict[str, Any]) -> Cron | Recurrence:
    zone = time_zone(trigger.get("time_zone"))
    if trigger["type"] == "cron":
        return Cron(trigger["expression"], zone)
    return Recurrence(
        frequency=trigger["frequency"],
        interval=trigger["interval"],
        start=trigger["start"],
        zone=zone,
        hours=tuple(trigger.get("hours") or ()),
        minutes=tuple(trigger.get("minutes") or ()),
        week_days=tuple(trigger.get("week_days") or ()),
        month_days=tuple(trigger.get("month_days") or ()),
    )


def window_plan(trigger: dict[str, Any]) -> WindowPlan:
    return WindowPlan(
        start=trigger["start"],
        length=trigger["length"],
        end=trigger.get("end"),
        delay=trigger.get("delay", 0),
    )


def dependencies(trigger: dict[str, Any]) -> list[Dependency]:
    return [Dependency(d["offset"], d.get("size"), d.get("schedule")) for d in trigger.get("depends_on", [])]


def next_due(trigger: dict[str, Any], after: int) -> int | None:
    """The first time after ``after`` the clock makes the schedule due (None: never again)."""
    kind = trigger["type"]
    if kind == "tumbling_window":
        plan = window_plan(trigger)
        index = max(0, plan.due_until(after))
        return plan.due_at(index) if plan.exists(index) else None
    if kind not in ("cron", "recurrence"):
        return None
    start = trigger.get("start")
    found = occurrences(trigger).next_after(max(after, start - 1) if start is not None else after)
    end = trigger.get("end")
    return None if found is None or (end is not None and found > end) else found


def fires_due(schedule: Schedule, now: int) -> tuple[list[NewFire], int | None]:
    """The fires a due schedule claims at ``now``, and when it is due next."""
    assert schedule.next_fire_at is not None
    if schedule.trigger_type == "tumbling_window":
        return _windows_due(schedule, now)
    times: list[int] = []
    moment: int | None = schedule.next_fire_at
    while moment is not None and moment <= now and len(times) < MAX_FIRES_PER_TICK:
        times.append(moment)
        moment = next_due(schedule.trigger, moment)
    if schedule.catchup == "latest":
        times = times[-1:]
    elif schedule.catchup == "none":
        times = [t for t in times if now - t <= MISFIRE_GRACE_MS][-1:]
    fired = [
        NewFire(iso(t), t, "scheduled", base_values(schedule.name, schedule.trigger_type, t)) for t in times
    ]
    return fired, moment


def _windows_due(schedule: Schedule, now: int) -> tuple[list[NewFire], int | None]:
    plan = window_plan(schedule.trigger)
    assert schedule.next_fire_at is not None
    first = plan.index_of(schedule.next_fire_at - plan.delay) - 1
    last = min(plan.due_until(now), first + MAX_FIRES_PER_TICK)
    indexes = [i for i in range(max(0, first), last) if plan.exists(i)]
    keep = indexes
    if schedule.catchup == "latest":
        keep = indexes[-1:]
    elif schedule.catchup == "none":
        keep = [i for i in indexes if now - plan.due_at(i) <= MISFIRE_GRACE_MS][-1:]
    chosen = set(keep)
    fired = [window_fire(schedule, plan, i, skipped=i not in chosen) for i in indexes]
    following = last if plan.exists(last) else None
    return fired, None if following is None else plan.due_at(following)


def window_fire(
    schedule: Schedule, plan: WindowPlan, index: int, *, skipped: bool = False, kind: str = "window"
) -> NewFire:
    start, end = plan.window_at(index)
    values = {
        **base_values(schedule.name, schedule.trigger_type, start),
        "window_start": iso(start),
        "window_end": iso(end),
    }
    state = FireState.SKIPPED if skipped else FireState.PENDING
    return NewFire(iso(start), start, kind, values, window_end=end, state=state)
