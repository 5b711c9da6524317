"""``keel scheduler``: run the scheduler loop in the foreground until interrupted."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import open_workspace


def scheduler(
    ctx: typer.Context,
    tick: Annotated[
        float, typer.Option("--tick", help="Longest sleep between ticks, in seconds.", min=0.05, max=60)
    ] = 1.0,
    runner_limit: Annotated[
        int | None,
        typer.Option("--runner-limit", help="Fired jobs running at once (default: two per core).", min=1),
    ] = None,
) -> None:
    """Run schedules: fire clock, storage, event and job-completion triggers, exactly once.

    Several schedulers may run against one workspace; none fires anything twice.
    Stop it with Ctrl-C (or SIGTERM); a fire it had claimed is finished by the next one.
    """
    import logging
    import signal
    import threading

    from keel.schedules.loop import run_scheduler

    workspace = open_workspace(ctx)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"Keel scheduler on workspace {workspace.config.root} (Ctrl-C to stop)", err=True)
    try:
        run_scheduler(workspace, stop=stop, tick_seconds=tick, runner_limit=runner_limit)
    except KeyboardInterrupt:
        stop.set()
    typer.echo("scheduler stopped", err=True)
