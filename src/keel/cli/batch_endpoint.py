"""``keel batch-endpoint``: create, list, show, update, delete and invoke batch endpoints (``az ml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from collections.abc import Callable

    from keel.endpoints.batch.endpoints import BatchEndpoint
    from keel.tracking.entities import Job
    from keel.workspace import Workspace

app = typer.Typer(
    help="Batch endpoints: score whole data sets with a deployed model, as jobs.", no_args_is_help=True
)

NameOption = Annotated[str, typer.Option("--name", "-n", help="The endpoint's name.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field: key=value (repeatable).")
]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="A batch endpoint YAML file.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Overrides the file's name.")] = None,
    overrides: SetOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a batch endpoint from Azure ML YAML, like `az ml batch-endpoint create`."""
    from keel.endpoints.batch.endpoints import create_endpoint
    from keel.endpoints.batch.specs import load_endpoint

    loaded = load_endpoint(file, overrides or [])
    endpoint = create_endpoint(open_workspace(ctx), loaded, name=name)
    _report(endpoint, output, verb="created")


@app.command("list")
def list_endpoints(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List batch endpoints with their deployments and the default one."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.endpoints.batch.endpoints import list_endpoints as listed

    found = listed(open_workspace(ctx))
    if output == OutputFormat.json:
        print_json([endpoint.to_dict() for endpoint in found])
        return
    rows = [
        (e.name, e.default_deployment, ", ".join(e.deployments), e.description, format_time(e.created_at))
        for e in found
    ]
    columns = ("Name", "Default deployment", "Deployments", "Description", "Created")
    print_table(columns, rows, empty="no batch endpoints: create one with `keel batch-endpoint create -f`")


@app.command("show")
def show(ctx: typer.Context, name: NameOption, output: OutputOption = OutputFormat.table) -> None:
    """Show a batch endpoint: its deployments, the default, and how to invoke it."""
    from keel.endpoints.batch.endpoints import get_endpoint

    _report(get_endpoint(open_workspace(ctx), name), output)


@app.command("update")
def update(
    ctx: typer.Context,
    name: NameOption,
    file: Annotated[str | None, typer.Option("--file", "-f", help="A batch endpoint YAML file.")] = None,
    overrides: SetOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Change the default deployment, the description or tags.

    e.g. --set defaults.deployment_name=forest (as in `az ml batch-endpoint update`).
    """
    from keel.endpoints.batch.endpoints import update_endpoint
    from keel.endpoints.batch.specs import endpoint_changes
    from keel.errors import InvalidInput

    if file is None and not overrides:
        raise InvalidInput("give --file or --set", hint="e.g. --set defaults.deployment_name=NAME")
    spec = endpoint_changes(name, file, overrides or [])
    endpoint = update_endpoint(
        open_workspace(ctx),
        name,
        description=spec.description,
        tags=spec.tags,
        default_deployment=spec.defaults.deployment_name if spec.defaults else None,
    )
    _report(endpoint, output, verb="updated")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a batch endpoint and its deployments (its jobs and their outputs stay)."""
    from keel.endpoints.batch.endpoints import delete_endpoint, get_endpoint

    workspace = open_workspace(ctx)
    endpoint = get_endpoint(workspace, name)
    if not yes:
        count = len(endpoint.deployments)
        typer.confirm(f"delete batch endpoint {name} and its {count} deployment(s)?", abort=True)
    delete_endpoint(workspace, name)
    typer.echo(f"deleted batch endpoint {name}")


@app.command("invoke")
def invoke(
    ctx: typer.Context,
    name: NameOption,
    input: Annotated[
        str,
        typer.Option("--input", "-i", help="A local path, azureml:DATA:VERSION or azureml://datastores/…"),
    ],
    deployment_name: Annotated[
        str | None, typer.Option("--deployment-name", "-d", help="Default: the endpoint's default.")
    ] = None,
    input_type: Annotated[
        str | None, typer.Option("--input-type", help="uri_file, uri_folder or mltable (default: detected).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a deployment setting: mini_batch_size=100 (repeatable)."),
    ] = None,
    mini_batch_size: Annotated[int | None, typer.Option("--mini-batch-size", min=1)] = None,
    instance_count: Annotated[int | None, typer.Option("--instance-count", min=1)] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="The job's name.")] = None,
    experiment_name: Annotated[
        str | None, typer.Option("--experiment-name", "-e", help="Default: the endpoint's name.")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Run here and follow the log until the end.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Score data with a deployment, as a job (like `az ml batch-endpoint invoke`).

    Without --stream the job runs in the background and this returns its name at once.
    Exit codes with --stream: 0 completed, 1 failed, 2 canceled.
    """
    from keel.endpoints.batch.run import invoke as invoke_endpoint
    from keel.endpoints.batch.run import start_in_background

    settings = list(overrides or [])
    if mini_batch_size is not None:
        settings.append(f"mini_batch_size={mini_batch_size}")
    if instance_count is not None:
        settings.append(f"resources.instance_count={instance_count}")
    workspace = open_workspace(ctx)
    job = invoke_endpoint(
        workspace,
        name,
        input=input,
        deployment=deployment_name,
        input_type=input_type,
        overrides=settings,
        job_name=job_name,
        experiment_name=experiment_name,
    )
    if stream:
        raise typer.Exit(_run_here(workspace, job.name, output))
    start_in_background(workspace, job.name)
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json({"name": job.name, "status": "queued", "endpoint": name})
        return
    typer.echo(f"submitted batch job {job.name}")
    typer.echo(f"  follow it:  keel job stream {job.name}")
    typer.echo(f"  see it:     keel batch-endpoint show-job {job.name}")


def _run_here(workspace: Workspace, name: str, output: OutputFormat) -> int:
    """Run the job in a thread of this process while following its log; returns the exit code."""
    import threading

    from keel.endpoints.batch.run import run_job
    from keel.jobs.outcome import exit_code_for
    from keel.jobs.stream import follow
    from keel.tracking.jobs import get_job

    finished = threading.Event()
    failure: list[BaseException] = []
    cancel = threading.Event()

    def target() -> None:
        try:
            run_job(workspace, name, cancel=cancel)
        except BaseException as exc:  # surfaced below, in the main thread
            failure.append(exc)
        finally:
            finished.set()

    runner = threading.Thread(target=target, name="keel-batch-driver", daemon=True)
    runner.start()
    if output == OutputFormat.table:
        typer.echo(f"batch job {name}")
    try:
        follow(workspace, name, printer=_printer(output), finished=finished)
        runner.join()
    except KeyboardInterrupt:
        cancel.set()
        runner.join()
        raise
    if failure:
        raise failure[0]
    job = get_job(workspace.store, name)
    _summarize(job, output)
    return exit_code_for(job)


def _printer(output: OutputFormat) -> Callable[[str], None]:
    if output == OutputFormat.json:
        return lambda line: typer.echo(line, err=True)
    return typer.echo


def _summarize(job: Job, output: OutputFormat) -> None:
    from keel.cli.render import format_duration, print_json
    from keel.data.job_data import ASSET_TAG

    asset = job.tags.get(ASSET_TAG + "score")
    if output == OutputFormat.json:
        print_json({**job.to_dict(), "output_asset": asset})
        return
    line = f"batch job {job.name}: {job.status.label} in {format_duration(job.duration_ms)}"
    if job.status_reason:
        line += f" ({job.status_reason})"
    typer.echo(line, err=job.status.value != "completed")
    if asset:
        typer.echo(f"output: data asset {asset} (keel data download {asset})")


@app.command("list-jobs")
def list_jobs(
    ctx: typer.Context,
    name: NameOption,
    max_results: Annotated[int, typer.Option("--max-results", "-r", min=1, max=10_000)] = 50,
    output: OutputOption = OutputFormat.table,
) -> None:
    """The jobs an endpoint's invocations ran, newest first."""
    from keel.cli.render import format_duration, format_time, print_json, print_table
    from keel.endpoints.batch.endpoints import get_endpoint
    from keel.endpoints.batch.records import DEPLOYMENT_TAG, invocations_of
    from keel.tracking.jobs import get_job_by_id, reap_dead_jobs

    workspace = open_workspace(ctx)
    get_endpoint(workspace, name)
    reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    found = [
        get_job_by_id(workspace.store, job_id)
        for job_id in invocations_of(workspace.store, name, limit=max_results)
    ]
    if output == OutputFormat.json:
        print_json([job.to_dict() for job in found])
        return
    rows = [
        (
            job.name,
            job.tags.get(DEPLOYMENT_TAG),
            job.status.label,
            job.params.get("input"),
            format_time(job.start_time),
            format_duration(job.duration_ms),
        )
        for job in found
    ]
    columns = ("Job", "Deployment", "Status", "Input", "Started", "Duration")
    print_table(columns, rows, empty=f"no jobs yet: keel batch-endpoint invoke --name {name} --input …")


@app.command("show-job")
def show_job(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A batch job's name.")],
    failed_only: Annotated[bool, typer.Option("--failed", help="Only the mini-batches that failed.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """A batch job's mini-batches: how each ended, after how many attempts, and why."""
    from keel.cli.render import print_json, print_table
    from keel.endpoints.batch.records import load_invocation, mini_batches
    from keel.tracking.jobs import get_job, reap_dead_jobs

    workspace = open_workspace(ctx)
    reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    found = get_job(workspace.store, job)
    invocation = load_invocation(workspace.store, found.id)
    rows = mini_batches(workspace.store, found.id, status="failed" if failed_only else None)
    if output == OutputFormat.json:
        print_json(
            {
                **found.to_dict(),
                "endpoint": invocation.endpoint,
                "deployment": invocation.deployment,
                "input": invocation.input,
                "mini_batches": rows,
            }
        )
        return
    status = found.status.label + (f" ({found.status_reason})" if found.status_reason else "")
    typer.echo(f"batch job {found.name}: {invocation.endpoint}/{invocation.deployment}, {status}")
    table = [
        (
            r["mini_batch"],
            r["status"],
            r["attempts"],
            r["items"],
            r["first_item"],
            r["output_rows"],
            r["error"],
        )
        for r in rows
    ]
    columns = ("Mini-batch", "Status", "Attempts", "Items", "First item", "Rows out", "Error")
    print_table(columns, table, empty="no mini-batch has ended yet")


def _report(endpoint: BatchEndpoint, output: OutputFormat, *, verb: str | None = None) -> None:
    from keel.cli.render import format_time, print_fields, print_json

    if output == OutputFormat.json:
        print_json(endpoint.to_dict())
        return
    if verb is not None:
        typer.echo(f"{verb} batch endpoint {endpoint.name}")
        return
    print_fields(
        [
            ("Name", endpoint.name),
            ("Description", endpoint.description),
            ("Default deployment", endpoint.default_deployment),
            ("Deployments", ", ".join(endpoint.deployments) or "none yet"),
            ("Tags", ", ".join(f"{k}={v}" for k, v in sorted(endpoint.tags.items()))),
            ("Created", format_time(endpoint.created_at)),
            ("Invoke", f"keel batch-endpoint invoke --name {endpoint.name} --input PATH_OR_DATA"),
        ],
        title=f"Batch endpoint {endpoint.name}",
    )
