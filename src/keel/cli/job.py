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
    """Open the workspace and settle jobs whose processes died, and approvals whose
    timeout passed, before anyone looks."""
    from keel.approvals import settle
    from keel.tracking.jobs import reap_dead_jobs

    workspace = open_workspace(ctx)
    reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    settle(workspace)
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
    from keel.cli.render import format_duration, print_json
    from keel.jobs.records import stored_outputs
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    workspace = _readable(ctx)
    job = get_job(workspace.store, name)
    found = search_jobs(workspace.store, parent_id=job.id, max_results=1000).jobs
    children = sorted(found, key=lambda child: child.id)
    if output == OutputFormat.json:
        data = job.to_dict()
        data["artifact_uri"] = _artifact_uri(workspace, job)
        data["children"] = [child.name for child in children]
        data["inputs"] = [vars(item) for item in job.inputs]
        data["outputs"] = {k: vars(v) for k, v in stored_outputs(workspace.store, job.id).items()}
        data.update(
            step=job.step_name,
            reused_from=job.reused_from,
            reuse_note=job.reuse_note,
            exit_code=job.exit_code,
        )
        print_json(data)
        return
    steps = [
        (
            c.name,
            c.step_name or c.display_name,
            c.status.label,
            format_duration(c.duration_ms),
            _reuse_line(c),
        )
        for c in children
    ]
    _print_job(workspace, job, steps)


def _artifact_uri(workspace: Workspace, job: Job) -> str:
    if "://" in job.artifact_location:
        return job.artifact_location
    return workspace.artifacts.url_for(job.artifact_location)


def _print_job(workspace: Workspace, job: Job, children: list[tuple[Any, ...]]) -> None:
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
            ("Step", job.step_name or None),
            ("Reuse", _reuse_line(job)),
            ("Exit code", job.exit_code),
            ("Environment", job.environment),
            ("Compute", job.compute),
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
        inputs = [(i.name, i.type, i.value or i.uri or i.source_type, _short(i.digest)) for i in job.inputs]
        print_table(("Input", "Type", "Value or source", "Digest"), inputs, title="Inputs")
    _print_outputs(workspace, job)
    if children:
        print_table(("Job", "Step", "Status", "Duration", "Reuse"), children, title="Steps")


def _reuse_line(job: Job) -> str | None:
    if job.reused_from:
        return f"reused from {job.reused_from}"
    return job.reuse_note


def _short(digest: str | None) -> str:
    return "" if digest is None else digest[:19] + "…"


def _print_outputs(workspace: Workspace, job: Job) -> None:
    from keel.cli.render import print_table
    from keel.jobs.records import stored_outputs

    outputs = stored_outputs(workspace.store, job.id)
    rows = [
        (o.name, o.type, o.value if o.uri is None else workspace.artifacts.url_for(o.uri), _short(o.digest))
        for o in outputs.values()
    ]
    if rows:
        print_table(("Output", "Type", "Value or location", "Digest"), rows, title="Outputs")


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
        print_json({job.name: {"params": job.params, "metrics": job.to_dict()["metrics"]} for job in found})
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


# -- running jobs ---------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The job's YAML file.")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: jobs.train.inputs.lr=0.1 (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The job's name.")] = None,
    experiment_name: Annotated[str | None, typer.Option("--experiment-name", "-e")] = None,
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Follow the logs until the job ends.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait quietly until the job ends.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Submit a job from Azure ML YAML (command, pipeline or sweep), like `az ml job create`.

    Without --stream or --wait it runs in the background and this returns at once.
    Exit codes when waiting: 0 completed, 1 failed, 2 canceled, 3 timed out. A pipeline
    paused at an approval step is waited for until it is decided (or its timeout passes).
    """
    from keel.jobs import components
    from keel.jobs.submit import start_in_background, submit
    from keel.specs import load_job

    workspace = open_workspace(ctx)
    spec = load_job(file, overrides or [], lookup_component=components.lookup(workspace))
    for notice in spec.notices:
        typer.echo(f"notice: {notice}", err=True)
    job = submit(workspace, spec, name=name, experiment_name=experiment_name, display_name=display_name)
    if stream or wait:
        raise typer.Exit(_run_here(workspace, job.name, stream=stream, output=output))
    start_in_background(workspace, job.name)
    _announce(job.name, output)


def _announce(name: str, output: OutputFormat) -> None:
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json({"name": name, "status": "queued"})
        return
    typer.echo(f"submitted job {name}")
    typer.echo(f"  follow it:  keel job stream {name}")
    typer.echo(f"  see it:     keel job show {name}")


def _run_here(
    workspace: Workspace, name: str, *, stream: bool, output: OutputFormat, previous: Any = None
) -> int:
    """Run the job in this process (a thread) and follow it; returns the exit code."""
    import threading

    from keel.jobs.outcome import exit_code_for
    from keel.jobs.stream import follow
    from keel.jobs.submit import run
    from keel.tracking.jobs import get_job

    finished = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run(workspace, name, previous=previous)
        except BaseException as exc:  # surfaced below, in the main thread
            failure.append(exc)
        finally:
            finished.set()

    from keel.approvals import settle

    runner = threading.Thread(target=target, name="keel-runner", daemon=True)
    runner.start()
    if stream:
        typer.echo(f"job {name}")
        follow(workspace, name, printer=typer.echo, finished=finished, tick=lambda: settle(workspace))
    runner.join()
    if failure:
        raise failure[0]
    job = get_job(workspace.store, name)
    if not job.status.is_terminal:  # paused at an approval: wait for the decision, then its runner
        typer.echo(f"job {name}: Paused ({job.status_reason})", err=True)
        job = follow(
            workspace, name, printer=lambda _line: None, show_logs=False, tick=lambda: settle(workspace)
        )
    _summarize(job, output)
    return exit_code_for(job)


def _summarize(job: Job, output: OutputFormat) -> None:
    from keel.cli.render import format_duration, print_json

    if output == OutputFormat.json:
        print_json(job.to_dict())
        return
    line = f"job {job.name}: {job.status.label} in {format_duration(job.duration_ms)}"
    if job.status_reason:
        line += f" ({job.status_reason})"
    typer.echo(line, err=job.status.value != "completed")


@app.command("stream")
def stream_job(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The job's name.")]) -> None:
    """Follow a job's steps and logs until it ends; the exit code says how it ended."""
    from keel.jobs.outcome import exit_code_for
    from keel.jobs.stream import follow

    workspace = _readable(ctx)
    job = follow(workspace, name, printer=typer.echo)
    _summarize(job, OutputFormat.table)
    raise typer.Exit(exit_code_for(job))


@app.command("cancel")
def cancel_job(ctx: typer.Context, name: Annotated[str, typer.Argument(help="The job's name.")]) -> None:
    """Cancel a queued or running job (running steps are stopped)."""
    from keel.jobs.submit import cancel

    status = cancel(_readable(ctx), name)
    typer.echo(f"job {name}: {status.label}")


@app.command("rerun")
def rerun_job(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job to run again.")],
    from_failed: Annotated[
        bool, typer.Option("--from-failed", help="Reuse every step that completed; run the rest.")
    ] = False,
    stream: Annotated[bool, typer.Option("--stream")] = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Run a job again with the same spec and code snapshot."""
    from keel.jobs.submit import previous_steps, rerun, start_in_background

    workspace = _readable(ctx)
    job = rerun(workspace, name)
    previous = previous_steps(workspace, name) if from_failed else None
    if stream or wait:
        raise typer.Exit(_run_here(workspace, job.name, stream=stream, output=output, previous=previous))
    start_in_background(workspace, job.name, rerun_of=name if from_failed else None)
    _announce(job.name, output)


@app.command("download")
def download(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job's name.")],
    output_name: Annotated[
        str | None,
        typer.Option("--output-name", help="One named output (default: all of them and the artifacts)."),
    ] = None,
    download_path: Annotated[str, typer.Option("--download-path", "-p")] = ".",
) -> None:
    """Copy a job's outputs (and artifacts) to a local folder, like `az ml job download`."""
    from pathlib import Path

    from keel.jobs.download import download_job

    written = download_job(_readable(ctx), name, Path(download_path), output_name=output_name)
    for path in written:
        typer.echo(f"downloaded {path}")


@app.command("export")
def export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A job Keel ran (from YAML or from Python).")],
    file: Annotated[str | None, typer.Option("--file", "-f", help="Write here instead of stdout.")] = None,
) -> None:
    """Write a job's spec as Azure ML YAML, e.g. a pipeline built with @keel.pipeline."""
    from pathlib import Path

    from keel.jobs.submit import load_spec
    from keel.specs.export import export_yaml

    _, spec = load_spec(_readable(ctx), name)
    if file is None:
        typer.echo(export_yaml(spec), nl=False)
        return
    target = Path(file)
    target.write_text(export_yaml(spec, relative_to=target.resolve().parent))
    typer.echo(f"wrote {target}")
