"""Everything a copy decides before anything is written: locations, listings, the plan.

Bad input is refused here, before a job exists or a byte moves: an unknown
datastore, refused credentials, a source that is not there, filters that match
nothing, a destination inside a source, ``--if-exists fail`` with files already
at the destination, a sync that would delete more than ``--max-delete``.

Where files land: a folder's *contents* go into the destination (like
``rclone copy`` and ``cp -r src/. dst``). A single file goes into the
destination when that is a folder (or ends with ``/``), else it becomes the
destination file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from keel.data.copy.incremental import Window, open_window
from keel.data.copy.listing import Entry, Tree, label, list_destination, list_source, store_kind
from keel.data.copy.options import CopyRequest, Filters
from keel.data.copy.plan import Item, Selection, drop_unchanged, select_items
from keel.data.datastores import storage_errors
from keel.data.locations import Location, resolve_location
from keel.errors import Conflict, InvalidInput
from keel.workspace import Workspace

# Object stores stamp modification in whole seconds: a blob written in the second its
# source last changed may read as older than it. (A source changed again within that
# second at the same size is taken as unchanged, as with rclone's --modify-window.)
MODIFY_WINDOW_NS = 1_000_000_000


@dataclass
class Prepared:
    """A checked request: what to read, where to write, and the plan."""

    request: CopyRequest
    sources: list[Tree]
    destination: Location  # the destination folder every planned path is under
    selection: Selection
    extras: list[str] = field(default_factory=list)  # sync: destination files to delete
    window: Window | None = None

    @property
    def items(self) -> list[Item]:
        return self.selection.items


def prepare(workspace: Workspace, request: CopyRequest, *, base: Path | None = None) -> Prepared:
    """Resolve, list and plan ``request``; raises (writing nothing) on any bad input."""
    options = request.options.check()
    if not request.sources:
        raise InvalidInput("nothing to copy: give a source")
    sources = [resolve_location(workspace, text, base=base) for text in request.sources]
    destination = resolve_location(workspace, request.destination, base=base)
    request = _absolute(request, sources, destination)
    for source in sources:
        refuse_nesting(source, destination)
    listed_at = time.time()
    trees = [list_source(source) for source in sources]
    root, rename = destination_root(destination, trees, request.destination)
    window = open_window(workspace.store, request, listed_at=listed_at) if options.incremental else None
    selection = select_items(
        trees, Filters.of(options), rename=rename, window=window.bounds if window else None
    )
    prepared = Prepared(request, trees, root, selection, window=window)
    if options.sync or options.if_exists == "fail":
        _compare_with_destination(prepared)
    else:
        check_reachable(root)
    return prepared


def _absolute(request: CopyRequest, sources: list[Location], destination: Location) -> CopyRequest:
    """The request with every location as an absolute URI, so a resume works from anywhere."""
    folder = "/" if request.destination.endswith("/") and not destination.uri.endswith("/") else ""
    return replace(request, sources=tuple(s.uri for s in sources), destination=destination.uri + folder)


def sources_again(workspace: Workspace, request: CopyRequest) -> list[Tree]:
    """The sources listed afresh (a resume needs them to find each file and, for sync, extras)."""
    return [list_source(resolve_location(workspace, text)) for text in request.sources]


def refuse_nesting(source: Location, destination: Location) -> None:
    """A destination inside its source would copy the copy, forever."""
    if not _same_store(source.fs, destination.fs):
        return
    src, dst = _canonical(source), _canonical(destination)
    if dst == src:
        raise InvalidInput(f"the destination is the source ({source.uri})")
    if dst.startswith(src.rstrip("/") + "/"):
        raise InvalidInput(
            f"the destination {destination.uri} is inside the source {source.uri}",
            hint="copy to a folder outside the source",
        )


def _canonical(location: Location) -> str:
    if store_kind(location.fs) == "local":
        return os.path.realpath(location.path)
    return location.path.rstrip("/")


def _same_store(a: object, b: object) -> bool:
    if store_kind(a) != store_kind(b):
        return False
    if store_kind(a) == "local":
        return True
    keys = ("account_name", "account_url", "endpoint_url", "client_kwargs")
    return all(getattr(a, key, None) == getattr(b, key, None) for key in keys)


def destination_root(destination: Location, trees: list[Tree], text: str) -> tuple[Location, str | None]:
    """The folder files land in, and the new name of a single file copied to a file path."""
    if len(trees) == 1 and trees[0].is_file:
        if text.endswith("/") or _is_folder(destination):
            return destination, None
        folder, _, name = destination.path.rstrip("/").rpartition("/")
        return _parent(destination, folder), name
    if _is_file(destination):
        raise InvalidInput(f"{destination.uri} is a file; a folder can only be copied into a folder")
    return destination, None


def _parent(location: Location, folder: str) -> Location:
    uri = location.uri.rstrip("/").rpartition("/")[0]
    relative = (location.relative or "").rpartition("/")[0] if location.relative is not None else None
    return replace(location, path=folder, uri=uri, relative=relative)


def _is_folder(location: Location) -> bool:
    with storage_errors(label(location)):
        if store_kind(location.fs) == "local":
            return os.path.isdir(location.path)
        return bool(location.fs.isdir(location.path))


def _is_file(location: Location) -> bool:
    with storage_errors(label(location)):
        if store_kind(location.fs) == "local":
            return os.path.isfile(location.path)
        return bool(location.fs.isfile(location.path))


def check_reachable(location: Location) -> None:
    """Ask the destination's store something, so refused credentials fail now, not per file."""
    if store_kind(location.fs) == "local":
        return
    with storage_errors(label(location)):
        location.fs.ls(location.path.split("/", 1)[0], detail=False)


def _compare_with_destination(prepared: Prepared) -> None:
    options = prepared.request.options
    existing = list_destination(prepared.destination)
    if options.if_exists == "fail":
        clashes = [item.path for item in prepared.items if item.path in existing]
        if clashes:
            more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
            raise Conflict(
                f"{clashes[0]}{more} already exist at {prepared.destination.uri}",
                hint="data_copy_mode fail_if_conflict (--if-exists fail) refuses to overwrite",
            )
    if not options.sync:
        return
    window = 0 if store_kind(prepared.destination.fs) == "local" else MODIFY_WINDOW_NS
    drop_unchanged(prepared.selection, existing, window_ns=window)
    prepared.extras = extras_of(prepared, existing)
    limit = options.max_delete
    if limit is not None and len(prepared.extras) > limit:
        raise Conflict(
            f"the sync would delete {len(prepared.extras)} files at {prepared.destination.uri}, "
            f"more than --max-delete {limit}; nothing was copied or deleted",
            hint="check the source and destination, or raise --max-delete",
        )


def extras_of(prepared: Prepared, existing: Mapping[str, Entry]) -> list[str]:
    """Destination files the source does not have (files the filters exclude are left alone)."""
    filters = Filters.of(prepared.request.options)
    kept = prepared.selection.kept_paths or set()
    return sorted(path for path in existing if path not in kept and filters.keeps_path(path))
