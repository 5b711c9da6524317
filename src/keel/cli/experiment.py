"""``keel experiment``: the groups jobs belong to."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

app = typer.Typer(help="Experiments: named groups of jobs.", no_args_is_help=True)


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="Also list deleted experiments.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List experiments with how many jobs each holds."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.tracking.experiments import count_jobs_by_experiment, list_experiments

    workspace = open_workspace(ctx)
    found = list_experiments(workspace.store, view="all" if include_archived else "active")
    counts = count_jobs_by_experiment(workspace.store)
    if output == OutputFormat.json:
        print_json(
            [
                {
                    "id": e.id,
                    "name": e.name,
                    "jobs": counts.get(e.id, 0),
                    "lifecycle_stage": e.lifecycle_stage.value,
                    "created_at": e.created_at,
                    "tags": e.tags,
                }
                for e in found
            ]
        )
        return
    rows = [
        (e.id, e.name, counts.get(e.id, 0), e.lifecycle_stage.value, format_time(e.created_at)) for e in found
    ]
    print_table(("Id", "Name", "Jobs", "Stage", "Created"), rows)
