"""``keel model``: register, list, show, update, archive, restore, download and alias models
(``az ml model``, with MLflow's aliases)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.data.lineage import Hop
    from keel.models.registry import ModelVersion
    from keel.workspace import Workspace

app = typer.Typer(
    help="Models: the registry of versioned models, with lineage and aliases.", no_args_is_help=True
)

Reference = Annotated[
    str, typer.Argument(help="NAME, NAME:VERSION, NAME@ALIAS, NAME@latest, azureml:… or models:/….")
]
VersionOption = Annotated[str | None, typer.Option("--version", "-v", help="The version (default: latest).")]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat for more.")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Option("--file", "-f", help="A model YAML file.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Default: the next number.")] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path", "-p", help="A local folder or file, azureml://jobs/<job>/outputs/<out>, a URI."
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--type", "-t", help="custom_model or mlflow_model (default: detected).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    tags: TagOption = None,
    from_job: Annotated[
        str | None, typer.Option("--from-job", help="Register an output of this job.")
    ] = None,
    output_name: Annotated[
        str | None, typer.Option("--output-name", help="With --from-job: the output (default: model).")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Register a model version: its files are stored by content, with a hash of every file.

    With --file, the other options override the file's values, as in `az ml model create`.
    """
    from pathlib import Path

    from keel.cli.render import print_json
    from keel.errors import InvalidInput
    from keel.models.registry import Request, register
    from keel.models.spec import create_from_file

    workspace = open_workspace(ctx)
    if from_job is not None:
        if path is not None:
            raise InvalidInput("give --from-job or --path, not both")
        path = f"azureml://jobs/{from_job}/outputs/{output_name or 'model'}"
    given = {"name": name, "version": version, "type": kind, "path": path, "description": description}
    if file is not None:
        found, created = create_from_file(workspace, Path(file), overrides=given)
    else:
        if name is None or path is None:
            raise InvalidInput(
                "give --file, or --name with --path or --from-job", hint="keel model create --help"
            )
        request = Request(
            name=name,
            path=path,
            type=kind,
            version=version,
            description=description,
            tags=_pairs(tags, "--tag"),
            reuse_latest=True,
        )
        found, created = register(workspace, request)
    if output == OutputFormat.json:
        print_json({**found.to_dict(), "created": created})
        return
    verb = "registered" if created else "already registered, unchanged:"
    typer.echo(f"{verb} model {found.name}:{found.version} ({found.type}; use it as {found.reference})")


@app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Every version of this model.")] = None,
    include_archived: Annotated[bool, typer.Option("--include-archived", help="Archived ones too.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List models (the latest version of each), or every version of one."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.models.registry import list_models as listed

    found = listed(open_workspace(ctx), name, include_archived=include_archived)
    if output == OutputFormat.json:
        print_json([version.to_dict() for version in found])
        return
    rows = [
        (
            v.name,
            v.version + (" (archived)" if v.archived else ""),
            v.type,
            ", ".join(v.flavors),
            v.job_name,
            format_time(v.created_at),
        )
        for v in found
    ]
    columns = ("Name", "Version", "Type", "Flavors", "Produced by", "Created")
    print_table(columns, rows, empty="no models: register one with `keel model create`")


@app.command("show")
def show(
    ctx: typer.Context,
    reference: Reference,
    version: VersionOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a model version: its files, flavors, signature, aliases and lineage
    (model ← job ← the data it read ← the jobs that produced that …)."""
    from keel.cli.render import print_json
    from keel.models.aliases import aliases_of
    from keel.models.lineage import model_lineage

    workspace = open_workspace(ctx)
    found = _resolve(workspace, reference, version)
    hops = model_lineage(workspace, found)
    pointing = [alias for alias, v in aliases_of(workspace, found.name).items() if v == found.version]
    if output == OutputFormat.json:
        print_json({**found.to_dict(), "aliases": pointing, "lineage": [vars(hop) for hop in hops]})
        return
    _print_version(found, pointing)
    _print_lineage(found, hops)


@app.command("update")
def update(
    ctx: typer.Context,
    reference: Reference,
    version: VersionOption = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    tags: TagOption = None,
    remove_tags: Annotated[
        list[str] | None, typer.Option("--remove-tag", help="A tag key to remove.")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Change a version's description and tags (its files never change)."""
    from keel.cli.render import print_json
    from keel.models.registry import update_model_version

    workspace = open_workspace(ctx)
    found = _resolve(workspace, reference, version)
    changed = update_model_version(
        workspace,
        found.name,
        found.version,
        description=description,
        set_tags=_pairs(tags, "--tag"),
        remove_tags=remove_tags,
    )
    if output == OutputFormat.json:
        print_json(changed.to_dict())
        return
    typer.echo(f"updated model {changed.name}:{changed.version}")


@app.command("archive")
def archive(ctx: typer.Context, reference: Reference, version: VersionOption = None) -> None:
    """Hide a version (or, without one, every version) from lists and @latest; it still resolves."""
    _set_archived(ctx, reference, version, archived=True)


@app.command("restore")
def restore(ctx: typer.Context, reference: Reference, version: VersionOption = None) -> None:
    """Bring archived versions back."""
    _set_archived(ctx, reference, version, archived=False)


@app.command("download")
def download(
    ctx: typer.Context,
    reference: Reference,
    version: VersionOption = None,
    download_path: Annotated[str, typer.Option("--download-path", "-p", help="Into this folder.")] = ".",
) -> None:
    """Copy a version's files to DOWNLOAD_PATH/NAME, each checked against its registered hash."""
    from pathlib import Path

    from keel.models.files import download as fetch

    workspace = open_workspace(ctx)
    found = _resolve(workspace, reference, version)
    written = fetch(workspace, found, Path(download_path))
    typer.echo(f"downloaded model {found.name}:{found.version} to {written}")


@app.command("alias")
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    assignments: Annotated[
        list[str] | None, typer.Argument(help="ALIAS=VERSION to set (ALIAS= removes it).")
    ] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", "-r", help="An alias to remove.")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Set, move or remove aliases (`keel model alias forest champion=3`); without any, list them.

    An alias resolves wherever a model is named: azureml:forest@champion, models:/forest@champion.
    """
    from keel.cli.render import print_json, print_table
    from keel.models.aliases import aliases_of, delete_alias, set_alias

    workspace = open_workspace(ctx)
    for label, version in _pairs(assignments, "ALIAS=VERSION").items():
        if version:
            set_alias(workspace, name, label, version)
            typer.echo(f"{name}@{label} -> version {version}")
        else:
            delete_alias(workspace, name, label)
            typer.echo(f"removed {name}@{label}")
    for label in remove or []:
        delete_alias(workspace, name, label)
        typer.echo(f"removed {name}@{label}")
    if assignments or remove:
        return
    found = aliases_of(workspace, name)
    if output == OutputFormat.json:
        print_json(found)
        return
    print_table(("Alias", "Version"), list(found.items()), empty=f"model {name} has no aliases")


def _resolve(workspace: Workspace, reference: str, version: str | None) -> ModelVersion:
    from keel.models.references import parse_model_reference
    from keel.models.registry import get_model_version, resolve_model

    if version is not None:
        return get_model_version(workspace, parse_model_reference(reference).name, version)
    return resolve_model(workspace, reference)


def _set_archived(ctx: typer.Context, reference: str, version: str | None, *, archived: bool) -> None:
    from keel.errors import InvalidInput
    from keel.models.references import parse_model_reference
    from keel.models.registry import set_archived

    parsed = parse_model_reference(reference)
    if parsed.label is not None:
        raise InvalidInput("name the version to archive or restore (NAME:VERSION), or all of them (NAME)")
    pinned = version or parsed.version
    count = set_archived(open_workspace(ctx), parsed.name, pinned, archived=archived)
    what = f"model {parsed.name}:{pinned}" if pinned else f"{count} version(s) of model {parsed.name}"
    typer.echo(f"{'archived' if archived else 'restored'} {what}")


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    from keel.errors import InvalidInput

    found: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{item!r} is not {what if '=' in what else what + ' KEY=VALUE'}")
        found[key] = value
    return found


def _print_version(found: ModelVersion, pointing: list[str]) -> None:
    from keel.cli.render import format_time, print_fields
    from keel.models.signatures import describe

    tags = ", ".join(f"{k}={v}" for k, v in found.tags.items())
    properties = ", ".join(f"{k}={v}" for k, v in found.properties.items())
    print_fields(
        [
            ("Name", found.name),
            ("Version", found.version),
            ("Type", found.type),
            ("Flavors", ", ".join(found.flavors)),
            ("Signature", describe(found.signature)),
            ("Aliases", ", ".join(f"@{a}" for a in pointing)),
            ("Description", found.description),
            ("Tags", tags),
            ("Properties", properties),
            ("Path", found.path),
            ("Digest", found.digest),
            ("Files", f"{found.file_count} ({found.size} bytes)"),
            ("Source", found.source),
            ("Produced by", found.job_name and f"job {found.job_name}"),
            ("Archived", "yes" if found.archived else None),
            ("Created", format_time(found.created_at)),
            ("Use as", found.reference),
        ],
        title=f"Model {found.name}:{found.version}",
    )


def _print_lineage(found: ModelVersion, hops: list[Hop]) -> None:
    """model ← job ← what it read ← the jobs that produced that, and so on back."""
    if found.job_name is None:
        return
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree(f"[bold]Lineage[/bold]: model {found.name}:{found.version} ← job {found.job_name}")
    jobs: dict[int, Tree] = {0: tree}
    for hop in hops:
        digest = f"  [dim]{hop.digest[:19]}…[/dim]" if hop.digest else ""
        branch = jobs[hop.depth].add(f"{hop.input} ← {hop.source}{digest}")
        if hop.produced_by is not None:
            jobs[hop.depth + 1] = branch.add(f"← job {hop.produced_by}")
    Console().print(tree)
