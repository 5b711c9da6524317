"""``keel batch-deployment``: create, update, list, show and delete batch deployments (``az ml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.endpoints.batch.endpoints import BatchDeployment

app = typer.Typer(
    help="Batch deployments: a model, its scoring code and settings, under an endpoint.", no_args_is_help=True
)

EndpointOption = Annotated[str, typer.Option("--endpoint-name", "-e", help="The batch endpoint.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="The deployment's name.")]
FileOption = Annotated[str, typer.Option("--file", "-f", help="A batch deployment YAML file.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a field of the file: key=value (repeatable).")
]


@app.command("create")
def create(
    ctx: typer.Context,
    file: FileOption,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Overrides the file's name.")] = None,
    endpoint_name: Annotated[
        str | None, typer.Option("--endpoint-name", "-e", help="Overrides the file's endpoint_name.")
    ] = None,
    set_default: Annotated[
        bool, typer.Option("--set-default", help="Make it the endpoint's default deployment.")
    ] = False,
    overrides: SetOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a batch deployment from Azure ML YAML, like `az ml batch-deployment create`.

    A local model path is registered (anonymously unless the file names it); the code
    folder is snapshotted, so later edits do not change the deployment.
    """
    _create(ctx, file, name, endpoint_name, set_default, overrides, output, replace=False)


@app.command("update")
def update(
    ctx: typer.Context,
    file: FileOption,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Overrides the file's name.")] = None,
    endpoint_name: Annotated[
        str | None, typer.Option("--endpoint-name", "-e", help="Overrides the file's endpoint_name.")
    ] = None,
    set_default: Annotated[
        bool, typer.Option("--set-default", help="Make it the endpoint's default deployment.")
    ] = False,
    overrides: SetOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Replace an existing deployment's definition (model, code, settings) from a file."""
    _create(ctx, file, name, endpoint_name, set_default, overrides, output, replace=True)


def _create(
    ctx: typer.Context,
    file: str,
    name: str | None,
    endpoint_name: str | None,
    set_default: bool,
    overrides: list[str] | None,
    output: OutputFormat,
    *,
    replace: bool,
) -> None:
    from keel.endpoints.batch.endpoints import create_deployment
    from keel.endpoints.batch.specs import load_deployment

    loaded = load_deployment(file, overrides or [])
    for notice in loaded.notices:
        typer.echo(f"notice: {notice}", err=True)
    deployment = create_deployment(
        open_workspace(ctx),
        loaded,
        name=name,
        endpoint_name=endpoint_name,
        set_default=set_default,
        replace=replace,
    )
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json(deployment.to_dict())
        return
    verb = "updated" if replace else "created"
    typer.echo(
        f"{verb} batch deployment {deployment.endpoint}/{deployment.name} "
        f"(model {deployment.model_name}:{deployment.model_version}, {deployment.settings.workers} worker(s))"
    )


@app.command("list")
def list_deployments(
    ctx: typer.Context, endpoint_name: EndpointOption, output: OutputOption = OutputFormat.table
) -> None:
    """List an endpoint's deployments."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.endpoints.batch.endpoints import get_endpoint
    from keel.endpoints.batch.endpoints import list_deployments as listed

    workspace = open_workspace(ctx)
    found = listed(workspace, endpoint_name)
    if output == OutputFormat.json:
        print_json([deployment.to_dict() for deployment in found])
        return
    default = get_endpoint(workspace, endpoint_name).default_deployment
    rows = [
        (
            d.name + (" (default)" if d.name == default else ""),
            f"{d.model_name}:{d.model_version}",
            d.scoring_script or "no-code (MLflow)",
            d.settings.workers,
            d.settings.mini_batch_size or "default",
            format_time(d.updated_at),
        )
        for d in found
    ]
    columns = ("Name", "Model", "Scoring", "Workers", "Mini-batch size", "Updated")
    print_table(columns, rows, empty=f"no deployments: keel batch-deployment create -f … -e {endpoint_name}")


@app.command("show")
def show(
    ctx: typer.Context,
    name: NameOption,
    endpoint_name: EndpointOption,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a deployment: its model version, code, settings."""
    from keel.endpoints.batch.endpoints import get_deployment

    _print(get_deployment(open_workspace(ctx), endpoint_name, name), output)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameOption,
    endpoint_name: EndpointOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a deployment (not the endpoint's default while others remain)."""
    from keel.endpoints.batch.endpoints import delete_deployment, get_deployment

    workspace = open_workspace(ctx)
    get_deployment(workspace, endpoint_name, name)
    if not yes:
        typer.confirm(f"delete batch deployment {endpoint_name}/{name}?", abort=True)
    delete_deployment(workspace, endpoint_name, name)
    typer.echo(f"deleted batch deployment {endpoint_name}/{name}")


def _print(deployment: BatchDeployment, output: OutputFormat) -> None:
    from keel.cli.render import format_time, print_fields, print_json

    if output == OutputFormat.json:
        print_json(deployment.to_dict())
        return
    settings = deployment.settings
    retry = f"{settings.max_retries} retries, {settings.timeout:g} s timeout per mini-batch"
    print_fields(
        [
            ("Name", deployment.name),
            ("Endpoint", deployment.endpoint),
            ("Description", deployment.description),
            ("Model", f"{deployment.model_name}:{deployment.model_version}"),
            ("Scoring script", deployment.scoring_script or "none: no-code scoring of the MLflow model"),
            ("Code snapshot", deployment.code_digest),
            ("Environment", deployment.environment),
            ("Compute", f"{deployment.compute or 'local'} (local worker processes)"),
            ("Workers", f"{settings.instance_count} x {settings.max_concurrency_per_instance}"),
            ("Mini-batch size", settings.mini_batch_size or "default (10 files, or 100,000 rows)"),
            ("Error threshold", settings.error_threshold),
            ("Retries", retry),
            ("Output", f"{settings.output_action}, {settings.output_file_name}"),
            ("Logging level", settings.logging_level),
            ("Environment variables", ", ".join(sorted(settings.environment_variables))),
            ("Updated", format_time(deployment.updated_at)),
        ],
        title=f"Batch deployment {deployment.endpoint}/{deployment.name}",
    )
