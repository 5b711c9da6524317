"""``keel job``: list, show and compare jobs (``az ml job`` nouns and verbs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.tracking.entities import Job
    from keel.workspace import Workspace

app = typer.Typer(help="Jobs: every run, step and trial Keel has recorded.", no_args_is_help=True)


def _readable(ctx: typer.Context) -> Workspace:
    """Open the workspace and settle jobs whose processes died before anyone looks."""
    from keel.tracking.jobs import reap_dead_jobs

    workspace = open_workspace(ctx)
    reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    return workspace


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", "--experiment-name", "-e", help="Only this experiment."),
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option("--filter", help="e.g. \"params.model = 'rf' and min(metrics.loss) < 0.2\""),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", help="e.g. 'min(metrics.loss) ASC'; repeatable."),
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-r", min=1, max=50_000)] = 50,
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="Also list deleted jobs.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List jobs, newest first, filtered and ordered like MLflow's search."""
    from keel.cli.render import format_duration, format_time, print_json, print_table
    from keel.tracking.experiments import get_experiment_by_name
    from keel.tracking.search import search_jobs

    workspace = _readable(ctx)
    experiment_ids = None
    if experiment is not None:
        experiment_ids = [get_experiment_by_name(workspace.store, experiment).id]
    page = search_jobs(
        workspace.store,
        experiment_ids=experiment_ids,
        filter=filter,
        order_by=order_by,
        max_results=max_results,
        view="all" if include_archived else "active",
    )
    if output == OutputFormat.json:
        print_json([job.to_dict() for job in page.jobs])
        return
    rows = [
        (
            job.name,
            job.display_name,
            job.experiment_name,
            job.status.label,
            job.type,
            format_time(job.start_time),
            format_duration(job.duration_ms),
        )
        for job in page.jobs
    ]
    columns = ("Name", "Display name", "Experiment", "Status", "Type", "Started", "Duration")
    print_table(columns, rows, empty="no jobs yet: log one with keel.start_run()")


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job's name.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show one job: status, times, params, metric summaries, tags, inputs and children."""
    from keel.cli.render import print_json
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    workspace = _readable(ctx)
    job = get_job(workspace.store, name)
    children = search_jobs(
        workspace.store, parent_id=job.id, max_results=1000, order_by="start_time ASC"
    )
    if output == OutputFormat.json:
        data = job.to_dict()
        data["artifact_uri"] = _artifact_uri(workspace, job)
        data["children"] = [child.name for child in children.jobs]
        data["inputs"] = [vars(item) for item in job.inputs]
        print_json(data)
        return
    _print_job(workspace, job, [child.name for child in children.jobs])


def _artifact_uri(workspace: Workspace, job: Job) -> str:
    if "://" in job.artifact_location:
        return job.artifact_location
    return workspace.artifacts.url_for(job.artifact_location)


def _print_job(workspace: Workspace, job: Job, children: list[str]) -> None:
    from keel.cli.render import (
        format_duration,
        format_number,
        format_time,
        print_fields,
        print_table,
    )

    status = job.status.label + (f" ({job.status_reason})" if job.status_reason else "")
    print_fields(
        [
            ("Name", job.name),
            ("Display name", job.display_name),
            ("Experiment", job.experiment_name),
            ("Type", job.type),
            ("Status", status),
            ("Parent", job.parent_name),
            ("Started", format_time(job.start_time)),
            ("Ended", format_time(job.end_time)),
            ("Duration", format_duration(job.duration_ms)),
            ("User", job.user_id),
            ("Artifacts", _artifact_uri(workspace, job)),
        ],
        title=f"Job {job.name}",
    )
    if job.params:
        print_table(("Param", "Value"), sorted(job.params.items()), title="Params")
    if job.metrics:
        rows = [
            (
                key,
                format_number(s.last),
                format_number(s.min),
                format_number(s.max),
                s.count,
                s.last_step,
            )
            for key, s in sorted(job.metrics.items())
        ]
        print_table(("Metric", "Last", "Min", "Max", "Count", "Last step"), rows, title="Metrics")
    if job.tags:
        print_table(("Tag", "Value"), sorted(job.tags.items()), title="Tags")
    if job.inputs:
        inputs = [(i.name, i.type, i.uri or i.source_type, i.digest) for i in job.inputs]
        print_table(("Input", "Type", "Source", "Digest"), inputs, title="Inputs")
    if children:
        print_table(("Child job",), [(c,) for c in children], title="Children")


@app.command("compare")
def compare(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Two or more job names.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Params and metric summaries of several jobs, side by side."""
    from keel.cli.render import print_json, print_table
    from keel.errors import InvalidInput
    from keel.tracking.jobs import get_job

    if len(names) < 2:
        raise InvalidInput("compare needs at least two job names")
    workspace = _readable(ctx)
    found = [get_job(workspace.store, name) for name in names]
    if output == OutputFormat.json:
        print_json(
            {job.name: {"params": job.params, "metrics": job.to_dict()["metrics"]} for job in found}
        )
        return
    print_table(("", *names), _comparison_rows(found), title="Comparison")


def _comparison_rows(found: list[Job]) -> list[tuple[Any, ...]]:
    from keel.cli.render import format_number

    rows: list[tuple[Any, ...]] = [("status", *(job.status.label for job in found))]
    for key in sorted({k for job in found for k in job.params}):
        values = [job.params.get(key, "—") for job in found]
        marker = "" if len(set(values)) == 1 else " *"
        rows.append((f"params.{key}{marker}", *values))
    for key in sorted({k for job in found for k in job.metrics}):
        cells = []
        for job in found:
            summary = job.metrics.get(key)
            cells.append(
                "—"
                if summary is None
                else f"{format_number(summary.last)} "
                f"(min {format_number(summary.min)}, max {format_number(summary.max)})"
            )
        rows.append((f"metrics.{key}", *cells))
    return rows
