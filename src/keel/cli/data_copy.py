"""``keel data copy`` and ``keel data verify``: the copy engine's commands (AzCopy's, rclone's).

They add themselves to ``keel data`` (:mod:`keel.cli.data`); ``main.py`` imports
this module so they are registered.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace
from keel.cli.data import app

if TYPE_CHECKING:
    from keel.data.copy import CopyResult, Verification

_SHOWN = 20


class VerifyMode(StrEnum):
    size = "size"
    hash = "hash"


class IfExists(StrEnum):
    overwrite = "overwrite"
    fail = "fail"


Include = Annotated[
    list[str] | None, typer.Option("--include", help="Only files matching this glob (repeatable).")
]
Exclude = Annotated[
    list[str] | None, typer.Option("--exclude", help="Leave out files matching this glob (repeatable).")
]
Prefix = Annotated[
    str | None, typer.Option("--prefix", help="Only paths under the source starting with this.")
]
Since = Annotated[
    str | None, typer.Option("--modified-since", help="Only files modified at or after (ISO 8601).")
]
Until = Annotated[str | None, typer.Option("--modified-until", help="Only files modified before (ISO 8601).")]
Concurrency = Annotated[
    int | None, typer.Option("--max-concurrency", min=1, max=256, help="Files in flight.")
]


@app.command("copy")
def copy_command(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Argument(help="A local path, datastore URI or fsspec URL.")] = None,
    destination: Annotated[str | None, typer.Argument(help="Where to copy to (same forms).")] = None,
    include: Include = None,
    exclude: Exclude = None,
    prefix: Prefix = None,
    modified_since: Since = None,
    modified_until: Until = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; write nothing.")] = False,
    max_concurrency: Concurrency = None,
    bandwidth_limit: Annotated[
        str | None, typer.Option("--bandwidth-limit", help="e.g. 50M (bytes/s).")
    ] = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="Copy what changed; delete extras if all went well.")
    ] = False,
    max_delete: Annotated[
        int | None, typer.Option("--max-delete", min=0, help="Refuse a sync deleting more.")
    ] = None,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Skip files gone from the source.")
    ] = False,
    skip_forbidden: Annotated[bool, typer.Option("--skip-forbidden", help="Skip unreadable files.")] = False,
    skip_changed: Annotated[
        bool, typer.Option("--skip-changed", help="Skip files changing during the copy.")
    ] = False,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only files modified since last time.")
    ] = False,
    asset: Annotated[
        str | None, typer.Option("--asset", help="Register DST as a version of this data asset.")
    ] = None,
    verify: Annotated[VerifyMode, typer.Option("--verify", help="hash: SHA-256 while streaming.")] = (
        VerifyMode.hash
    ),
    if_exists: Annotated[IfExists, typer.Option("--if-exists", help="When DST has the file.")] = (
        IfExists.overwrite
    ),
    resume: Annotated[str | None, typer.Option("--resume", help="Finish this copy job.")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Record the job here.")] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Default: on a terminal.")
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Copy files between local folders, datastores and URLs, verified, as a resumable job."""
    if source is not None and not (resume or dry_run or sync or incremental):
        _read_ahead(source)  # not when the file may well be skipped as unchanged
    from keel.data.copy import CopyRequest, Options, copy
    from keel.data.copy import resume as resume_copy
    from keel.errors import InvalidInput

    workspace = open_workspace(ctx)
    reporter = _reporter(progress, output)
    if resume is not None:
        if source is not None or destination is not None:
            raise InvalidInput("--resume JOB takes no SRC or DST: the job remembers them")
        _report(resume_copy(workspace, resume, reporter=reporter), output, dry_run=False)
        return
    if source is None or destination is None:
        raise InvalidInput("give SRC and DST (or --resume JOB)", hint="keel data copy --help")
    options = Options(
        include=tuple(include or ()), exclude=tuple(exclude or ()), prefix=prefix,
        modified_since=modified_since, modified_until=modified_until, max_concurrency=max_concurrency,
        bandwidth_limit=bandwidth_limit, sync=sync, max_delete=max_delete, skip_missing=skip_missing,
        skip_forbidden=skip_forbidden, skip_changed=skip_changed, incremental=incremental,
        verify=verify.value, if_exists=if_exists.value, asset=asset,
    )  # fmt: skip
    request = CopyRequest((source,), destination, options)
    result = copy(workspace, request, reporter=reporter, experiment=experiment, dry_run=dry_run)
    _report(result, output, dry_run=dry_run)


def _read_ahead(source: str) -> None:
    """A large local source starts loading while the engine is imported (Python's start-up)."""
    from keel.data.copy.readahead import read_ahead
    from keel.data.locations import local_path, names_local_path

    if names_local_path(source):
        read_ahead(local_path(source))


def _reporter(progress: bool | None, output: OutputFormat) -> Any:
    import sys

    from keel.data.copy.progress import Bar, Silent

    show = sys.stderr.isatty() and output == OutputFormat.table if progress is None else progress
    return Bar() if show else Silent()


def _report(result: CopyResult, output: OutputFormat, *, dry_run: bool) -> None:
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json(_as_json(result, dry_run))
    elif dry_run:
        _print_plan(result)
    else:
        _print_summary(result)
    if not dry_run and not result.ok:
        raise typer.Exit(1)


def _as_json(result: CopyResult, dry_run: bool) -> dict[str, Any]:
    prepared = result.prepared
    found: dict[str, Any] = {
        "job": result.job.name if result.job else None,
        "status": result.status.value if not dry_run else "planned",
        "reason": result.reason,
        "source": list(prepared.request.sources),
        "destination": prepared.destination.uri,
        "counters": result.counters.as_dict(),
        "failed": [{"path": p, "error": e} for p, e in result.problems.failed],
        "skipped": [{"path": p, "reason": e} for p, e in result.problems.skipped],
        "asset": result.asset,
    }
    if dry_run:
        found["plan"] = [{"path": i.path, "size": i.size} for i in prepared.items]
        found["delete"] = prepared.extras
    return found


def _print_plan(result: CopyResult) -> None:
    from keel.data.copy.progress import human_bytes

    prepared, c = result.prepared, result.counters
    typer.echo(f"dry run: would copy {c.files_planned:,} files ({human_bytes(c.bytes_planned)}) "
               f"to {prepared.destination.uri}; nothing was written")  # fmt: skip
    for item in prepared.items[:_SHOWN]:
        typer.echo(f"  copy    {item.path}  ({human_bytes(item.size)})")
    for path in prepared.extras[:_SHOWN]:
        typer.echo(f"  delete  {path}")
    hidden = max(0, len(prepared.items) - _SHOWN) + max(0, len(prepared.extras) - _SHOWN)
    if hidden:
        typer.echo(f"  … and {hidden:,} more (see --output json)")
    if c.files_unchanged:
        typer.echo(f"{c.files_unchanged:,} files unchanged at the destination")


def _print_summary(result: CopyResult) -> None:
    from keel.data.copy.progress import summary_lines

    for line in summary_lines(result.counters):
        typer.echo(line)
    for path, error in result.problems.failed[:_SHOWN]:
        typer.echo(f"failed: {path}: {error}", err=True)
    if result.problems.skipped:
        typer.echo(f"skipped {len(result.problems.skipped):,} files (the skip log: keel job download)")
    if result.asset:
        typer.echo(f"registered data asset {result.asset}")
    if result.job is not None:
        verdict = "" if result.ok else f" ({result.status.value}: {result.reason})"
        typer.echo(f"job: {result.job.name}{verdict}")


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="What was copied.")],
    destination: Annotated[str, typer.Argument(help="Where it was copied to.")],
    include: Include = None,
    exclude: Exclude = None,
    prefix: Prefix = None,
    one_way: Annotated[bool, typer.Option("--one-way", help="Ignore files only at the destination.")] = False,
    size_only: Annotated[bool, typer.Option("--size-only", help="Compare sizes, not contents.")] = False,
    max_concurrency: Concurrency = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Compare SRC and DST file by file; exit 1 naming every missing or differing file."""
    from keel.data.copy import Options, verify

    options = Options(include=tuple(include or ()), exclude=tuple(exclude or ()), prefix=prefix)
    result = verify(
        open_workspace(ctx), source, destination, options=options, one_way=one_way, size_only=size_only,
        concurrency=max_concurrency or 4,
    )  # fmt: skip
    _report_verification(result, output)


def _report_verification(result: Verification, output: OutputFormat) -> None:
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json({
            "ok": result.ok, "compared": result.compared, "by_store_hash": result.by_store_hash,
            "by_content": result.by_content,
            "differences": [{"path": d.path, "kind": d.kind, "detail": d.detail} for d in result.differences],
        })  # fmt: skip
    else:
        for difference in result.differences:
            typer.echo(f"{difference.kind}: {difference.path} ({difference.detail})")
        verdict = "identical" if result.ok else f"{len(result.differences)} differ"
        typer.echo(f"compared {result.compared:,} files: {verdict}")
    if not result.ok:
        raise typer.Exit(1)
