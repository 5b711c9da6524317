"""``keel datastore``: create, list, show and delete datastores (``az ml datastore``).

Credentials are sealed before they are stored and never printed: ``show`` lists
their names with the values masked (or the ``${VAR}`` they are read from).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.data.datastores import Datastore

app = typer.Typer(
    help="Datastores: Azure Blob containers, S3 buckets and folders data lives in.", no_args_is_help=True
)


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The datastore's YAML file.")],
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Open the store and list its root before recording it."),
    ] = True,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Record a datastore from Azure ML's YAML (azure_blob) or Keel's (local, s3)."""
    from pathlib import Path

    from keel.cli.render import print_json
    from keel.data.datastore_specs import read_spec
    from keel.data.datastores import create_datastore

    path = Path(file)
    spec = read_spec(path)
    created = create_datastore(open_workspace(ctx), spec, base=path.resolve().parent, verify=verify)
    if output == OutputFormat.json:
        print_json(created.describe())
        return
    typer.echo(f"created datastore {created.name} ({created.type}: {_where(created)})")


@app.command("list")
def list_datastores(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List datastores, the workspace's own first."""
    from keel.cli.render import print_json, print_table
    from keel.data.datastores import list_datastores as recorded

    found = recorded(open_workspace(ctx))
    if output == OutputFormat.json:
        print_json([store.describe() for store in found])
        return
    rows = [(d.name, d.type, _where(d), d.description) for d in found]
    print_table(("Name", "Type", "Where", "Description"), rows)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The datastore's name.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a datastore's settings; credentials are masked."""
    from keel.cli.render import print_fields, print_json
    from keel.data.datastores import get_datastore

    datastore = get_datastore(open_workspace(ctx), name)
    described = datastore.describe()
    if output == OutputFormat.json:
        print_json(described)
        return
    fields = [(_label(key), _text(value)) for key, value in described.items() if key != "name"]
    print_fields([("Name", datastore.name), *fields], title=f"Datastore {datastore.name}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The datastore's name.")],
) -> None:
    """Forget a datastore (its data stays where it is); refused while data assets use it."""
    from keel.data.datastores import delete_datastore

    delete_datastore(open_workspace(ctx), name)
    typer.echo(f"deleted datastore {name}")


def _where(datastore: Datastore) -> str:
    settings = datastore.settings
    if datastore.type == "azure_blob":
        from keel.data.datastores import blob_account_url

        return f"{blob_account_url(settings)}/{settings['container_name']}"
    if datastore.type == "s3":
        prefix = settings.get("prefix") or ""
        return f"s3://{settings['bucket']}/{prefix}".rstrip("/")
    return str(settings.get("path") or settings.get("url") or "")


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or None
    return None if value is None else str(value)
