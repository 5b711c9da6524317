"""``keel data``: register, list, show, archive, restore and download data assets (``az ml data``).

Other data commands live in their own modules and add themselves to this app
(``from keel.cli.data import app`` then ``@app.command("copy")``); ``main.py``
imports them after this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

if TYPE_CHECKING:
    from keel.data.assets import DataAsset
    from keel.data.lineage import Hop
    from keel.workspace import Workspace

app = typer.Typer(help="Data: versioned data assets, copies between stores.", no_args_is_help=True)

Reference = Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@latest.")]
VersionOption = Annotated[str | None, typer.Option("--version", "-v", help="The version (default: latest).")]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[str | None, typer.Option("--file", "-f", help="A data YAML file.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n")] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Default: the next number.")] = None,
    kind: Annotated[
        str | None, typer.Option("--type", "-t", help="uri_file, uri_folder (default) or mltable.")
    ] = None,
    path: Annotated[
        str | None, typer.Option("--path", "-p", help="A local path (uploaded) or a datastore URI.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Register a data version: local data is uploaded (once per content), URIs are referenced.

    With --file, the other options override the file's values, as in `az ml data create`.
    """
    from pathlib import Path

    from keel.cli.render import print_json
    from keel.data.assets import Request, create_from_file, register
    from keel.errors import InvalidInput

    workspace = open_workspace(ctx)
    if file is not None:  # the options, when given too, override the file's values
        given = {"name": name, "version": version, "type": kind, "path": path, "description": description}
        asset, created = create_from_file(workspace, Path(file), overrides=given)
    else:
        if name is None or path is None:
            raise InvalidInput("give --file, or --name and --path", hint="keel data create --help")
        request = Request(name, path, kind or "uri_folder", version, description)
        asset, created = register(workspace, request)
    if output == OutputFormat.json:
        print_json({**asset.to_dict(), "created": created})
        return
    verb = "registered" if created else "already registered, unchanged:"
    count = f"{asset.file_count} file{'s' if asset.file_count != 1 else ''}, {_bytes(asset.size)}"
    typer.echo(f"{verb} {asset.name}:{asset.version}  ({count}; use it as {asset.reference})")


@app.command("list")
def list_assets(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Every version of this asset.")] = None,
    include_archived: Annotated[bool, typer.Option("--include-archived", help="Archived ones too.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List data assets (the latest version of each), or every version of one."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.data.assets import list_assets as listed

    found = listed(open_workspace(ctx), name, include_archived=include_archived)
    if output == OutputFormat.json:
        print_json([asset.to_dict() for asset in found])
        return
    rows = [
        (
            a.name,
            a.version + (" (archived)" if a.archived else ""),
            a.type,
            a.file_count,
            _bytes(a.size),
            a.job_name,
            format_time(a.created_at),
        )
        for a in found
    ]
    columns = ("Name", "Version", "Type", "Files", "Size", "Produced by", "Created")
    print_table(columns, rows, empty="no data assets: register one with `keel data create`")


@app.command("show")
def show(
    ctx: typer.Context,
    reference: Reference,
    version: VersionOption = None,
    profile: Annotated[bool, typer.Option("--profile", help="Print the data's profile.")] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a data version: where it is, its content digest, what produced it and from what."""
    from keel.cli.render import print_json
    from keel.data.lineage import lineage

    workspace = open_workspace(ctx)
    asset = _resolve(workspace, reference, version)
    hops = lineage(workspace, asset)
    if output == OutputFormat.json:
        data = asset.to_dict()
        data["lineage"] = [vars(hop) for hop in hops]
        if profile:
            data["profile"] = asset.profile
        print_json(data)
        return
    _print_asset(asset)
    _print_lineage(asset, hops)
    if profile:
        _print_profile(asset)


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
    """Copy a version's files to DOWNLOAD_PATH/NAME, each checked against the manifest."""
    from pathlib import Path

    from keel.data.assets import download as fetch

    workspace = open_workspace(ctx)
    asset = _resolve(workspace, reference, version)
    written = fetch(workspace, f"{asset.name}:{asset.version}", Path(download_path))
    typer.echo(f"downloaded {asset.name}:{asset.version} to {written}")


def _resolve(workspace: Workspace, reference: str, version: str | None) -> DataAsset:
    from keel.data.assets import get_asset, parse_reference

    name, pinned = parse_reference(reference)
    return get_asset(workspace, name, version or pinned)


def _set_archived(ctx: typer.Context, reference: str, version: str | None, *, archived: bool) -> None:
    from keel.data.assets import parse_reference, set_archived

    name, pinned = parse_reference(reference)
    if "@" in reference:
        from keel.errors import InvalidInput

        raise InvalidInput("name the version to archive or restore (NAME:VERSION), or all of them (NAME)")
    count = set_archived(open_workspace(ctx), name, version or pinned, archived=archived)
    what = f"{name}:{version or pinned}" if (version or pinned) else f"{count} version(s) of {name}"
    typer.echo(f"{'archived' if archived else 'restored'} {what}")


def _print_asset(asset: DataAsset) -> None:
    from keel.cli.render import format_time, print_fields

    tags = ", ".join(f"{k}={v}" for k, v in (asset.tags or {}).items())
    print_fields(
        [
            ("Name", asset.name),
            ("Version", asset.version),
            ("Type", asset.type),
            ("Path", asset.path),
            ("Description", asset.description),
            ("Tags", tags),
            ("Digest", asset.digest),
            ("Files", asset.file_count),
            ("Size", _bytes(asset.size)),
            ("Manifest", asset.manifest_uri),
            ("Produced by", asset.job_name and f"job {asset.job_name}"),
            ("Archived", "yes" if asset.archived else None),
            ("Created", format_time(asset.created_at)),
            ("Use as", asset.reference),
        ],
        title=f"Data {asset.name}:{asset.version}",
    )


def _print_lineage(asset: DataAsset, hops: list[Hop]) -> None:
    """The producing job, what it read, the jobs that produced that, and so on back."""
    if asset.job_name is None:
        return
    from rich.console import Console
    from rich.tree import Tree

    tree = Tree(f"[bold]Lineage[/bold]: produced by job {asset.job_name}")
    jobs: dict[int, Tree] = {0: tree}
    for hop in hops:
        digest = f"  [dim]{_short(hop.digest)}[/dim]" if hop.digest else ""
        branch = jobs[hop.depth].add(f"{hop.input} ← {hop.source}{digest}")
        if hop.produced_by is not None:
            jobs[hop.depth + 1] = branch.add(f"job {hop.produced_by}")
    Console().print(tree)


def _print_profile(asset: DataAsset) -> None:
    from keel.cli.render import print_json, print_table
    from keel.data import profiles

    if asset.profile is None:
        typer.echo("no profile (the data is not tabular, or was not profiled)")
        return
    rows_of = getattr(profiles, "profile_rows", None)
    if rows_of is None:
        print_json(asset.profile)
        return
    rows = rows_of(asset.profile)
    width = max((len(row) for row in rows), default=1)
    columns = getattr(profiles, "PROFILE_COLUMNS", None) or ("Column", *(f"{i}" for i in range(1, width)))
    print_table(tuple(columns), rows, title="Profile")


def _short(digest: str | None) -> str:
    return "" if digest is None else digest[:19] + "…"


def _bytes(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"
