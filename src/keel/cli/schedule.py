"""``keel schedule``: create, list, show, enable, disable, trigger, backfill, rerun-window, delete.

Mirrors ``az ml schedule``; times are shown in UTC (``2024-05-01T06:00:00Z``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.schedules.fires import Fire
    from keel.schedules.records import Schedule

app = typer.Typer(help="Schedules: jobs created by the clock, by files and by events.", no_args_is_help=True)
NameArgument = Annotated[str, typer.Argument(help="The schedule's name.")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The schedule's YAML file.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a schedule from YAML, or replace the definition of one with the same name."""
    from keel.cli.render import print_json
    from keel.schedules.operations import create_schedule

    created = create_schedule(open_workspace(ctx), file)
    schedule = created.schedule
    if output == OutputFormat.json:
        data = schedule.to_dict()
        if created.secret:
            data["secret"] = created.secret
        print_json(data)
        return
    typer.echo(
        f"{'created' if created.new else 'updated'} schedule {schedule.name} ({schedule.trigger_type})"
    )
    if schedule.next_fire_at is not None:
        typer.echo(f"  next fire:  {_when(schedule.next_fire_at)}")
    if schedule.trigger_type == "event":
        typer.echo(f"  events:     POST /api/schedules/{schedule.name}/events (on keel server / keel up)")
    if created.secret:
        typer.echo(f"  secret:     {created.secret}")
        typer.echo("  (shown once: sign events with it; see docs/concepts/schedules.md)")
    typer.echo("  fires when `keel scheduler` (or `keel up`) is running")


@app.command("list")
def list_schedules(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List schedules with their next and last fires."""
    from keel.cli.render import print_json, print_table
    from keel.schedules import fires, records

    workspace = open_workspace(ctx)
    found = records.list_schedules(workspace.store)
    last = {s.id: fires.recent_fires(workspace.store, s.id, limit=1) for s in found}
    if output == OutputFormat.json:
        print_json([{**s.to_dict(), "last_fire": _fire_json(last[s.id])} for s in found])
        return
    rows = [
        (
            s.name,
            s.trigger_type,
            "yes" if s.enabled else "no",
            _when(s.next_fire_at),
            _fire_line(last[s.id][0]) if last[s.id] else "",
        )
        for s in found
    ]
    columns = ("Name", "Type", "Enabled", "Next fire", "Last fire")
    print_table(columns, rows, empty="no schedules yet: keel schedule create -f schedule.yml")


@app.command("show")
def show(
    ctx: typer.Context,
    name: NameArgument,
    last: Annotated[int, typer.Option("--last", help="How many recent fires to show.", min=1)] = 10,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a schedule: its trigger, its next fires and its last fires."""
    from keel.cli.render import print_fields, print_json, print_table
    from keel.schedules import fires, records
    from keel.schedules.operations import upcoming

    workspace = open_workspace(ctx)
    schedule = records.get_schedule(workspace.store, name)
    recent = fires.recent_fires(workspace.store, schedule.id, limit=last)
    following = upcoming(schedule) if schedule.enabled else []
    if output == OutputFormat.json:
        data = schedule.to_dict()
        data.update(next_fires=following, last_fires=[fire.to_dict() for fire in recent])
        print_json(data)
        return
    print_fields(_fields(schedule), title=f"Schedule {schedule.name}")
    if following:
        print_table(("Next fires",), [(_when(moment),) for moment in following])
    rows = [(f.key, f.state.value, f.job_name, f.attempt, f.error or "") for f in recent]
    print_table(("Fire", "State", "Job", "Attempt", "Error"), rows, title="Last fires", empty="no fires yet")


def _fields(schedule: Schedule) -> list[tuple[str, Any]]:
    trigger = {
        k: _setting(k, v) for k, v in schedule.trigger.items() if k != "type" and v not in (None, [], "")
    }
    return [
        ("Name", schedule.name),
        ("Display name", schedule.display_name),
        ("Description", schedule.description),
        ("Type", schedule.trigger_type),
        ("Trigger", ", ".join(f"{key}={value}" for key, value in trigger.items())),
        ("Catch-up", schedule.catchup),
        ("Enabled", "yes" if schedule.enabled else "no"),
        ("Source", schedule.source_file),
        (
            "Events",
            f"POST /api/schedules/{schedule.name}/events" if schedule.trigger_type == "event" else None,
        ),
    ]


@app.command("enable")
def enable(ctx: typer.Context, name: NameArgument) -> None:
    """Enable a schedule: the clock resumes (missed fires follow its catch-up setting)."""
    from keel.schedules.operations import set_enabled

    schedule = set_enabled(open_workspace(ctx), name, True)
    typer.echo(f"schedule {name} enabled; next fire {_when(schedule.next_fire_at) or 'on its next event'}")


@app.command("disable")
def disable(ctx: typer.Context, name: NameArgument) -> None:
    """Disable a schedule: nothing fires until it is enabled again."""
    from keel.schedules.operations import set_enabled

    set_enabled(open_workspace(ctx), name, False)
    typer.echo(f"schedule {name} disabled")


@app.command("trigger")
def trigger(ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.table) -> None:
    """Fire a schedule once, now: its job is created and started."""
    from keel.cli.render import print_json
    from keel.schedules.launch import default_runner_limit
    from keel.schedules.operations import trigger_now

    fire = trigger_now(open_workspace(ctx), name, runner_limit=default_runner_limit())
    if output == OutputFormat.json:
        print_json(fire.to_dict())
        return
    if fire.error:
        raise typer.Exit(
            _fail(f"error: schedule {name} fired, but its job could not be created: {fire.error}")
        )
    typer.echo(f"fired schedule {name}: job {fire.job_name} ({fire.state.value})")
    typer.echo(f"  follow it:  keel job stream {fire.job_name}")


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    name: NameArgument,
    start: Annotated[str, typer.Option("--start", help="From this time (ISO 8601, UTC unless it says).")],
    end: Annotated[str, typer.Option("--end", help="Up to this time (exclusive).")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Claim the fires (or windows) of a past period that never happened; the scheduler runs them."""
    from keel.cli.render import print_json
    from keel.schedules.operations import backfill as claim_backfill

    claimed = claim_backfill(open_workspace(ctx), name, start, end)
    if output == OutputFormat.json:
        print_json([fire.to_dict() for fire in claimed])
        return
    typer.echo(f"claimed {len(claimed)} fire(s) of {name}; `keel scheduler` runs them, oldest first")
    for fire in claimed[:10]:
        typer.echo(f"  {fire.key}")
    if len(claimed) > 10:
        typer.echo(f"  … and {len(claimed) - 10} more")


@app.command("rerun-window")
def rerun_window(
    ctx: typer.Context,
    name: NameArgument,
    window_start: Annotated[str, typer.Option("--window-start", help="The window's start (ISO 8601).")],
) -> None:
    """Run one window of a tumbling-window schedule again (once it has finished)."""
    from keel.schedules.operations import rerun_window as rerun

    fire = rerun(open_workspace(ctx), name, window_start)
    typer.echo(
        f"window {fire.key} of {name} will run again (attempt {fire.attempt}) when `keel scheduler` runs"
    )


@app.command("delete")
def delete(ctx: typer.Context, name: NameArgument) -> None:
    """Delete a schedule (the jobs it created stay)."""
    from keel.schedules.operations import delete_schedule

    delete_schedule(open_workspace(ctx), name)
    typer.echo(f"deleted schedule {name}")


def _setting(key: str, value: Any) -> Any:
    """Times as UTC instants and durations in seconds, as people read them."""
    if key in ("start", "end") and isinstance(value, int):
        return _when(value)
    if key in ("length", "delay", "retry_interval") and isinstance(value, int):
        return f"{value / 1000:g}s"
    return value


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    from keel.schedules.timing import iso

    return iso(ms)


def _fire_line(fire: Fire) -> str:
    return f"{fire.key} ({fire.state.value})"


def _fire_json(found: list[Fire]) -> dict[str, Any] | None:
    return found[0].to_dict() if found else None


def _fail(message: str) -> int:
    typer.echo(message, err=True)
    return 1
