"""``keel component``: register, list and show versioned components (``az ml component``)."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

app = typer.Typer(help="Components: reusable, versioned commands and pipelines.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str, typer.Option("--file", "-f", help="The component's YAML file.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Register a component; its code folder is snapshotted now. Versions are immutable."""
    from keel.cli.render import print_json
    from keel.jobs.components import register

    registered, created = register(open_workspace(ctx), file)
    if output == OutputFormat.json:
        print_json({"name": registered.name, "version": registered.version, "created": created})
        return
    verb = "registered" if created else "already registered, unchanged:"
    reference = f"{registered.name}:{registered.version}"
    typer.echo(f"{verb} {reference}  (use it as azureml:{reference})")


@app.command("list")
def list_components(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List registered components, newest version first."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.jobs.components import list_components as registered

    found = registered(open_workspace(ctx))
    if output == OutputFormat.json:
        print_json([{"name": r.name, "version": r.version, "created_at": r.created_at} for r in found])
        return
    rows = [
        (r.name, r.version, r.component.kind, r.component.description, format_time(r.created_at))
        for r in found
    ]
    print_table(("Name", "Version", "Type", "Description", "Created"), rows, empty="no components registered")


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@latest.")],
    version: Annotated[str | None, typer.Option("--version", "-v")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a component's inputs, outputs and command."""
    from keel.cli.render import print_fields, print_json, print_table
    from keel.jobs.components import get

    base, _, pinned = name.replace("@latest", "").partition(":")
    registered = get(open_workspace(ctx), base, version or pinned or None)
    component = registered.component
    if output == OutputFormat.json:
        print_json(component.model_dump(mode="json", exclude={"source"}))
        return
    print_fields(
        [
            ("Name", component.name),
            ("Version", registered.version),
            ("Type", component.kind),
            ("Description", component.description),
            ("Command", component.command),
            ("Deterministic", component.is_deterministic),
            ("Code snapshot", component.code_digest),
        ],
        title=f"Component {component.name}:{registered.version}",
    )
    inputs = [(k, d.type, d.default, "optional" if d.optional else "") for k, d in component.inputs.items()]
    print_table(("Input", "Type", "Default", ""), inputs, title="Inputs", empty="no inputs")
    outputs = [(k, d.type) for k, d in component.outputs.items()]
    print_table(("Output", "Type"), outputs, title="Outputs", empty="no outputs")
