"""What people do with schedules: create, enable, disable, fire now, backfill, rerun a window,
delete, and see what fired and what will fire next. The CLI calls these, nothing else."""

from __future__ import annotations

import secrets as random_tokens
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.schedules import due, fires, records
from keel.schedules.fires import Fire, FireState, NewFire
from keel.schedules.jobs import base_values, check_template, template_of
from keel.schedules.records import Schedule
from keel.schedules.spec import ScheduleDefinition, read_schedule
from keel.schedules.timing import iso, parse_instant
from keel.schedules.windows import find_cycle
from keel.workspace import Workspace


@dataclass(frozen=True)
class Created:
    schedule: Schedule
    new: bool
    secret: str | None = None  # an event schedule's generated secret, shown once


def create_schedule(workspace: Workspace, path: str | Path) -> Created:
    """Check a schedule file completely, then store it (replacing one of the same name)."""
    definition = read_schedule(path)
    template = template_of(definition.create_job, definition.base_dir, definition.source_file)
    check_template(workspace, template, definition.name, definition.trigger_type)
    trigger = dict(definition.trigger)
    now = now_ms()
    if definition.trigger_type in ("cron", "recurrence") and trigger.get("start") is None:
        trigger["start"] = now
    _check_references(workspace, definition, trigger)
    secret, sealed = _event_secret(workspace, definition)
    first = trigger["start"] if definition.trigger_type == "tumbling_window" else due.next_due(trigger, now)
    values = {
        "name": definition.name,
        "display_name": definition.display_name,
        "description": definition.description,
        "tags": definition.tags,
        "trigger_type": definition.trigger_type,
        "trigger": trigger,
        "create_job": template,
        "base_dir": str(definition.base_dir),
        "source_file": definition.source_file,
        "catchup": definition.catchup,
        "enabled": definition.enabled,
        "secret": sealed,
        "next_fire_at": first if definition.enabled else None,
    }
    if definition.trigger_type == "tumbling_window":
        values["next_fire_at"] = due.window_plan(trigger).due_at(0) if definition.enabled else None
    schedule, new = records.save_schedule(workspace.store, values)
    if definition.trigger_type == "storage_event":
        _take_baseline(workspace, schedule)
    return Created(schedule, new, secret)


def _check_references(workspace: Workspace, definition: ScheduleDefinition, trigger: dict[str, Any]) -> None:
    """Schedules named by this one exist and have the right type; tumbling dependencies form no cycle."""
    source = definition.source_file
    if definition.trigger_type == "storage_event":
        from keel.schedules.storage import open_source

        if trigger.get("path"):
            trigger["path"] = str((definition.base_dir / Path(trigger["path"]).expanduser()).resolve())
        open_source(workspace, trigger)
    if definition.trigger_type == "job_completed" and trigger.get("schedule"):
        _existing(workspace, trigger["schedule"], source, "trigger.schedule")
    if definition.trigger_type != "tumbling_window":
        return
    graph: dict[str, list[str]] = {}
    for other in records.list_schedules(workspace.store, trigger_type="tumbling_window"):
        graph[other.name] = [d["schedule"] for d in other.trigger.get("depends_on", []) if d.get("schedule")]
    named = [d["schedule"] for d in trigger["depends_on"] if d.get("schedule")]
    for name in named:
        if name != definition.name:
            found = _existing(workspace, name, source, "trigger.depends_on")
            if found.trigger_type != "tumbling_window":
                raise InvalidInput(
                    f"{source}: trigger.depends_on: {name!r} is a {found.trigger_type} schedule; "
                    "windows can depend only on tumbling-window schedules"
                )
    graph[definition.name] = named
    cycle = find_cycle(graph, first=definition.name)
    if cycle:
        raise InvalidInput(
            f"{source}: trigger.depends_on: tumbling-window schedules would depend on each "
            f"other in a cycle: {' → '.join(cycle)}"
        )


def _existing(workspace: Workspace, name: str, source: str, field: str) -> Schedule:
    try:
        return records.get_schedule(workspace.store, name)
    except NotFound:
        raise InvalidInput(
            f"{source}: {field}: there is no schedule named {name!r}",
            hint="create it first (see `keel schedule list`)",
        ) from None


def _event_secret(workspace: Workspace, definition: ScheduleDefinition) -> tuple[str | None, str | None]:
    """The sealed secret of an event schedule, and the generated one to show (if generated)."""
    if definition.trigger_type != "event":
        return None, None
    from keel.data import secrets

    generated = None
    value = definition.secret
    if value is None:
        generated = value = random_tokens.token_urlsafe(32)
    return generated, secrets.seal({"secret": value}, secrets.workspace_key(workspace.config.root))


def _take_baseline(workspace: Workspace, schedule: Schedule) -> None:
    """Files already there when the schedule is created do not fire; later ones do."""
    from keel.schedules import storage

    source = storage.open_source(workspace, schedule.trigger)
    listing = storage.listing(source, schedule.trigger)
    with workspace.store.write() as conn:
        seen = storage.checkpoint(conn, schedule.id)
        removed = [path for path in seen if path not in listing]
        storage.save_checkpoint(conn, schedule.id, {p: stamp for p, (stamp, _) in listing.items()}, removed)


def set_enabled(workspace: Workspace, name: str, enabled: bool) -> Schedule:
    """Disable: nothing fires. Enable: the clock resumes from now (missed fires per catch-up)."""
    schedule = records.get_schedule(workspace.store, name)
    next_fire_at = schedule.next_fire_at
    if not enabled:
        next_fire_at = None
    elif schedule.next_fire_at is None:
        next_fire_at = _resume_at(workspace, schedule)
    records.set_enabled(workspace.store, name, enabled, next_fire_at)
    return records.get_schedule(workspace.store, name)


def _resume_at(workspace: Workspace, schedule: Schedule) -> int | None:
    if schedule.trigger_type == "tumbling_window":
        plan = due.window_plan(schedule.trigger)
        latest = fires.recent_fires(workspace.store, schedule.id, limit=1)
        index = 0 if not latest else plan.index_of(latest[0].time) + 1
        return plan.due_at(index) if plan.exists(index) else None
    return due.next_due(schedule.trigger, now_ms())


def trigger_now(workspace: Workspace, name: str, *, runner_limit: int) -> Fire:
    """Fire the schedule once, now (``az ml schedule trigger``): its job is created and started."""
    from keel.schedules.launch import launch_ready
    from keel.schedules.progress import ScheduleCache, submit_claimed

    schedule = records.get_schedule(workspace.store, name)
    if schedule.trigger_type == "tumbling_window":
        raise InvalidInput(
            f"{name} is a tumbling-window schedule; its fires are windows",
            hint="use `keel schedule rerun-window` or `keel schedule backfill`",
        )
    if schedule.trigger_type in ("storage_event", "event", "job_completed"):
        raise InvalidInput(
            f"{name} fires on {schedule.trigger_type.replace('_', ' ')}s, which carry values "
            "its job may need; it cannot be fired by hand"
        )
    now = now_ms()
    owner = fires.this_process()
    fire = NewFire(
        f"manual:{iso(now)}:{uuid.uuid4().hex[:8]}",
        now,
        "manual",
        base_values(schedule.name, schedule.trigger_type, now),
    )
    with workspace.store.write() as conn:
        claimed = fires.claim(conn, schedule.id, [fire], owner=owner)
    submit_claimed(workspace, claimed, ScheduleCache(workspace), owner=owner)
    launch_ready(workspace, limit=runner_limit)
    with workspace.store.read() as conn:
        found = fires.get_fire(conn, claimed[0].id)
    assert found is not None
    return found


def backfill(workspace: Workspace, name: str, start: str, end: str) -> list[Fire]:
    """Claim the fires of ``[start, end)`` that never happened; the scheduler runs them, oldest first."""
    schedule = records.get_schedule(workspace.store, name)
    begin, finish = _instant(start, "--start"), _instant(end, "--end")
    if finish <= begin:
        raise InvalidInput("--end must be after --start")
    wanted: list[NewFire] = []
    if schedule.trigger_type == "tumbling_window":
        plan = due.window_plan(schedule.trigger)
        indexes = [plan.index_of(s) for s, _ in plan.windows_between(begin, finish)]
        wanted = [due.window_fire(schedule, plan, i, kind="backfill") for i in indexes]
    elif schedule.trigger_type in ("cron", "recurrence"):
        moment = due.next_due(schedule.trigger, begin - 1)
        while moment is not None and moment < finish and len(wanted) < due.MAX_FIRES_PER_TICK:
            values = base_values(schedule.name, schedule.trigger_type, moment)
            wanted.append(NewFire(iso(moment), moment, "backfill", values, state=FireState.PENDING))
            moment = due.next_due(schedule.trigger, moment)
    else:
        raise InvalidInput(f"{name} fires on events; there is no past to backfill")
    if not wanted:
        raise InvalidInput(f"{name} has no fires between {iso(begin)} and {iso(finish)}")
    with workspace.store.write() as conn:
        return fires.claim(conn, schedule.id, wanted, owner=fires.this_process())


def rerun_window(workspace: Workspace, name: str, window_start: str) -> Fire:
    """Run one window again (a new job, same window values), once it has finished."""
    schedule = records.get_schedule(workspace.store, name)
    if schedule.trigger_type != "tumbling_window":
        raise InvalidInput(f"{name} is a {schedule.trigger_type} schedule, not a tumbling-window one")
    moment = _instant(window_start, "--window-start")
    plan = due.window_plan(schedule.trigger)
    index = plan.index_of(moment)
    if not plan.exists(index) or plan.window_at(index)[0] != moment:
        raise InvalidInput(
            f"{window_start} is not the start of one of {name}'s windows",
            hint=f"windows start at {iso(plan.start)} and every {plan.length // 1000} s after",
        )
    with workspace.store.write() as conn:
        fire = fires.fire_by_key(conn, schedule.id, iso(moment))
        if fire is None:
            raise NotFound(
                f"window {iso(moment)} of {name} has not been claimed yet",
                hint="use `keel schedule backfill` for windows that never ran",
            )
        if not fires.move(
            conn,
            fire,
            fires.FINISHED,
            FireState.PENDING,
            attempt=fire.attempt + 1,
            job_name=None,
            not_before=None,
            finished_at=None,
            error=None,
            kind="rerun",
        ):
            raise Conflict(
                f"window {iso(moment)} of {name} is {fire.state.value}; rerun it once it has finished"
            )
        found = fires.get_fire(conn, fire.id)
    assert found is not None
    return found


def delete_schedule(workspace: Workspace, name: str) -> None:
    """Forget the schedule (the jobs it created stay); refused while other windows depend on it."""
    dependants = [
        other.name
        for other in records.list_schedules(workspace.store, trigger_type="tumbling_window")
        if other.name != name and any(d.get("schedule") == name for d in other.trigger.get("depends_on", []))
    ]
    if dependants:
        raise Conflict(f"schedules {', '.join(dependants)} depend on {name!r}; delete them first")
    records.delete_schedule(workspace.store, name)


def upcoming(schedule: Schedule, count: int = 5) -> list[int]:
    """The next times the clock will make the schedule due."""
    found: list[int] = []
    moment = schedule.next_fire_at
    while moment is not None and len(found) < count:
        found.append(moment)
        moment = due.next_due(schedule.trigger, moment)
    return found


def _instant(text: str, option: str) -> int:
    from keel.schedules.timing import TimingError

    try:
        return parse_instant(text)
    except TimingError as exc:
        raise InvalidInput(f"{option}: {exc}") from None
