"""``keel online-endpoint``: create, update, invoke and inspect online endpoints (``az ml online-endpoint``).

Keys are printed only by ``get-credentials``; ``show`` and ``list`` never print them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

app = typer.Typer(help="Online endpoints: real-time scoring served by `keel up`.", no_args_is_help=True)

NameOption = Annotated[str, typer.Option("--name", "-n", help="The endpoint's name.")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The endpoint's YAML file.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Overrides the file's name.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Create an endpoint from Azure ML's online endpoint YAML (name, auth_mode, description, tags)."""
    from pathlib import Path

    from keel.cli.render import print_json
    from keel.endpoints.online.records import create_endpoint
    from keel.endpoints.online.specs import notices, read_endpoint

    spec = read_endpoint(Path(file), {"name": name})
    for notice in notices(spec):
        typer.echo(f"notice: {notice}", err=True)
    endpoint = create_endpoint(open_workspace(ctx), spec)
    if output == OutputFormat.json:
        print_json(endpoint.describe([]))
        return
    typer.echo(f"created online endpoint {endpoint.name} (auth_mode {endpoint.auth_mode})")


@app.command("show")
def show(ctx: typer.Context, name: NameOption, output: OutputOption = OutputFormat.table) -> None:
    """Show an endpoint: auth mode, traffic, mirroring, deployments and where it is served."""
    from keel.cli.render import print_fields, print_json
    from keel.endpoints.online.gateways import find_gateway
    from keel.endpoints.online.records import get_endpoint, list_deployments

    workspace = open_workspace(ctx)
    endpoint = get_endpoint(workspace, name)
    deployments = list_deployments(workspace, name)
    described = endpoint.describe(deployments)
    gateway = find_gateway(workspace)
    described["scoring_uri"] = f"{gateway[0]}/endpoints/{name}/score" if gateway else None
    if output == OutputFormat.json:
        print_json(described)
        return
    fields = [
        ("Auth mode", endpoint.auth_mode),
        ("Description", endpoint.description),
        ("Traffic", _shares(endpoint.traffic)),
        ("Mirror traffic", _shares(endpoint.mirror_traffic)),
        ("Deployments", ", ".join(f"{d.name} ({d.state})" for d in deployments) or "none"),
        ("Scoring URI", described["scoring_uri"] or "not served (run `keel up`)"),
    ]
    print_fields(fields, title=f"Online endpoint {name}")


@app.command("list")
def list_endpoints(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List online endpoints."""
    from keel.cli.render import print_json, print_table
    from keel.endpoints.online.records import list_endpoints as recorded

    found = recorded(open_workspace(ctx))
    if output == OutputFormat.json:
        print_json([endpoint.describe() for endpoint in found])
        return
    rows = [(e.name, e.auth_mode, _shares(e.traffic), _shares(e.mirror_traffic)) for e in found]
    print_table(("Name", "Auth mode", "Traffic", "Mirror"), rows, empty="no online endpoints")


@app.command("update")
def update(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The endpoint's name.")] = None,
    file: Annotated[
        str | None, typer.Option("--file", "-f", help="YAML with traffic, description, tags.")
    ] = None,
    traffic: Annotated[
        str | None, typer.Option("--traffic", help='The live split: "blue=90 green=10".')
    ] = None,
    mirror_traffic: Annotated[
        str | None,
        typer.Option("--mirror-traffic", help='A copy of a share: "green=20" ("green=0" stops it).'),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Change traffic, mirroring, description or tags; takes effect without dropping requests."""
    from pathlib import Path

    from keel.cli.render import print_json
    from keel.endpoints.online.records import update_endpoint
    from keel.endpoints.online.specs import parse_shares, read_endpoint
    from keel.errors import InvalidInput

    spec = read_endpoint(Path(file), {"name": name}) if file else None
    endpoint_name = name or (spec.name if spec else None)
    if endpoint_name is None:
        raise InvalidInput("give --name or --file")
    live = parse_shares(traffic, "--traffic") if traffic is not None else (spec.traffic if spec else None)
    mirror = (
        parse_shares(mirror_traffic, "--mirror-traffic")
        if mirror_traffic is not None
        else (spec.mirror_traffic if spec else None)
    )
    from keel.tracking.validation import text_values

    tags = text_values(spec.tags) if spec and spec.tags else None
    from keel.endpoints.online.client import poke

    workspace = open_workspace(ctx)
    endpoint = update_endpoint(
        workspace,
        endpoint_name,
        traffic=live,
        mirror_traffic=mirror,
        description=spec.description if spec else None,
        tags=tags,
    )
    poke(workspace)
    if output == OutputFormat.json:
        print_json(endpoint.describe())
        return
    typer.echo(
        f"updated online endpoint {endpoint.name}: traffic {_shares(endpoint.traffic)}"
        + (f", mirror {_shares(endpoint.mirror_traffic)}" if endpoint.mirror_traffic else "")
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: NameOption,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an endpoint and all its deployments (a running gateway stops their workers)."""
    from keel.endpoints.online.records import delete_endpoint

    if not yes:
        typer.confirm(f"delete online endpoint {name} and all its deployments?", abort=True)
    from keel.endpoints.online.client import poke

    workspace = open_workspace(ctx)
    delete_endpoint(workspace, name)
    poke(workspace)
    typer.echo(f"deleted online endpoint {name}")


@app.command("invoke")
def invoke(
    ctx: typer.Context,
    name: NameOption,
    request_file: Annotated[str, typer.Option("--request-file", "-r", help="The JSON body to send.")],
    deployment_name: Annotated[
        str | None,
        typer.Option("--deployment-name", "-d", help="Send to this deployment, whatever the traffic."),
    ] = None,
) -> None:
    """Send a request to the endpoint's /score route through the running gateway; prints the answer."""
    import sys
    from pathlib import Path

    from keel.endpoints.online.client import invoke as send

    reply = send(open_workspace(ctx), name, Path(request_file), deployment=deployment_name)
    sys.stdout.write(reply.body.decode("utf-8", "replace").rstrip() + "\n")
    if reply.status >= 400:
        typer.echo(f"error: the endpoint answered {reply.status}", err=True)
        raise typer.Exit(1)


@app.command("get-credentials")
def get_credentials(ctx: typer.Context, name: NameOption) -> None:
    """Print the endpoint's keys (auth_mode key) or a fresh token (aml_token), as JSON."""
    from keel.cli.render import print_json
    from keel.endpoints.online.records import credentials

    print_json(credentials(open_workspace(ctx), name))


@app.command("regenerate-keys")
def regenerate_keys(
    ctx: typer.Context,
    name: NameOption,
    key_type: Annotated[str, typer.Option("--key-type", help="primary or secondary.")] = "primary",
) -> None:
    """Replace one key; the other keeps working while clients move over."""
    from keel.endpoints.online.client import poke
    from keel.endpoints.online.records import regenerate_keys as regenerate

    workspace = open_workspace(ctx)
    regenerate(workspace, name, key_type)
    poke(workspace)
    typer.echo(f"regenerated the {key_type} key of {name} (`get-credentials` prints it)")


def _shares(shares: dict[str, int]) -> str:
    return " ".join(f"{name}={share}" for name, share in sorted(shares.items())) or "none"
