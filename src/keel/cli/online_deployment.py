"""``keel online-deployment``: create, update and inspect deployments (``az ml online-deployment``).

When ``keel up`` is serving the workspace, ``create`` and ``update`` wait until the
new workers are ready (or failed, with the reason); otherwise the deployment is
recorded and served when ``keel up`` starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.endpoints.online.records import Deployment
    from keel.workspace import Workspace

app = typer.Typer(help="Online deployments: a model, its scoring code and its workers.", no_args_is_help=True)

EndpointOption = Annotated[str, typer.Option("--endpoint-name", "-e", help="The endpoint's name.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="The deployment's name.")]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Return once recorded; do not wait for the workers.")
]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The deployment's YAML file.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Overrides the file's name.")] = None,
    endpoint_name: Annotated[
        str | None, typer.Option("--endpoint-name", "-e", help="Overrides the file's.")
    ] = None,
    all_traffic: Annotated[
        bool, typer.Option("--all-traffic", help="Send all the endpoint's traffic here.")
    ] = False,
    no_wait: NoWaitOption = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create a deployment from Azure ML's managed online deployment YAML."""
    from pathlib import Path

    from keel.endpoints.online.deployments import create_deployment
    from keel.endpoints.online.specs import notices, read_deployment

    path = Path(file)
    spec = read_deployment(path, {"name": name, "endpoint_name": endpoint_name})
    for notice in notices(spec):
        typer.echo(f"notice: {notice}", err=True)
    workspace = open_workspace(ctx)
    created = create_deployment(workspace, spec, base=path.resolve().parent, all_traffic=all_traffic)
    _settle(workspace, created, no_wait=no_wait, output=output, verb="created")


@app.command("update")
def update(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Option("--file", "-f", help="The deployment's YAML file.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The deployment's name.")] = None,
    endpoint_name: Annotated[
        str | None, typer.Option("--endpoint-name", "-e", help="The endpoint's name.")
    ] = None,
    instance_count: Annotated[
        int | None, typer.Option("--instance-count", help="Workers to run.", min=1)
    ] = None,
    no_wait: NoWaitOption = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Change a deployment (model, code, settings from -f; or --instance-count): new workers, then a swap."""
    from pathlib import Path

    from keel.endpoints.online.deployments import scale_deployment, update_deployment
    from keel.endpoints.online.specs import read_deployment
    from keel.errors import InvalidInput

    workspace = open_workspace(ctx)
    if file is not None:
        path = Path(file)
        spec = read_deployment(path, {"name": name, "endpoint_name": endpoint_name})
        if instance_count is not None:
            spec = spec.model_copy(update={"instance_count": instance_count})
        updated = update_deployment(workspace, spec, base=path.resolve().parent)
    elif name and endpoint_name and instance_count is not None:
        updated = scale_deployment(workspace, endpoint_name, name, instance_count)
    else:
        raise InvalidInput("give --file, or --name, --endpoint-name and --instance-count")
    _settle(workspace, updated, no_wait=no_wait, output=output, verb="updated")


def _settle(
    workspace: Workspace, deployment: Deployment, *, no_wait: bool, output: OutputFormat, verb: str
) -> None:
    from keel.cli.render import print_json
    from keel.endpoints.online.client import poke, wait_for_deployment

    poke(workspace)
    settled = (
        None
        if no_wait
        else wait_for_deployment(workspace, deployment.endpoint, deployment.name, deployment.revision)
    )
    current = settled or deployment
    if output == OutputFormat.json:
        print_json(current.describe())
    elif settled is None:
        typer.echo(f"{verb} deployment {_label(deployment)}; `keel up` serves it")
    elif settled.state == "ready":
        typer.echo(f"{verb} deployment {_label(deployment)}: ready")
    if settled is not None and settled.state == "failed":
        from keel.errors import Unavailable

        raise Unavailable(
            f"deployment {deployment.name} is recorded; its workers failed to start: {settled.state_reason}",
            hint=f"`keel online-deployment get-logs -e {deployment.endpoint} -n {deployment.name}`",
        )


def _label(deployment: Deployment) -> str:
    return f"{deployment.name} of {deployment.endpoint} ({deployment.model_reference})"


@app.command("show")
def show(
    ctx: typer.Context,
    endpoint_name: EndpointOption,
    name: NameOption,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a deployment: model, code, settings and the gateway's last report."""
    from keel.cli.render import print_fields, print_json
    from keel.endpoints.online.records import get_deployment

    deployment = get_deployment(open_workspace(ctx), endpoint_name, name)
    described = deployment.describe()
    if output == OutputFormat.json:
        print_json(described)
        return
    code = described["code_configuration"]
    fields = [
        ("Model", f"{described['model']} ({described['model_type']})"),
        ("Scoring script", code["scoring_script"] if code else "none (no-code)"),
        ("Instances", described["instance_count"]),
        ("State", deployment.state + (f": {deployment.state_reason}" if deployment.state_reason else "")),
        ("Request settings", ", ".join(f"{k}={v}" for k, v in described["request_settings"].items())),
        ("Data collection", ", ".join((described["data_collector"] or {}).get("collections", {})) or "off"),
    ]
    print_fields(fields, title=f"Online deployment {endpoint_name}/{name}")


@app.command("list")
def list_deployments(
    ctx: typer.Context, endpoint_name: EndpointOption, output: OutputOption = OutputFormat.table
) -> None:
    """List an endpoint's deployments."""
    from keel.cli.render import print_json, print_table
    from keel.endpoints.online.records import list_deployments as recorded

    found = recorded(open_workspace(ctx), endpoint_name)
    if output == OutputFormat.json:
        print_json([d.describe() for d in found])
        return
    rows = [(d.name, d.model_reference, d.settings["instance_count"], d.state) for d in found]
    print_table(("Name", "Model", "Instances", "State"), rows, empty="no deployments")


@app.command("delete")
def delete(
    ctx: typer.Context,
    endpoint_name: EndpointOption,
    name: NameOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a deployment that takes no traffic; its workers finish their requests, then stop."""
    from keel.endpoints.online.records import delete_deployment

    if not yes:
        typer.confirm(f"delete deployment {name} of {endpoint_name}?", abort=True)
    from keel.endpoints.online.client import poke

    workspace = open_workspace(ctx)
    delete_deployment(workspace, endpoint_name, name)
    poke(workspace)
    typer.echo(f"deleted deployment {name} of {endpoint_name}")


@app.command("get-logs")
def get_logs(
    ctx: typer.Context,
    endpoint_name: EndpointOption,
    name: NameOption,
    lines: Annotated[int, typer.Option("--lines", "-l", help="How many of the last lines.", min=1)] = 100,
) -> None:
    """Print the end of the deployment's worker log (model loading, init(), errors)."""
    import sys

    from keel.endpoints.online.client import read_logs

    sys.stdout.write(read_logs(open_workspace(ctx), endpoint_name, name, lines))
