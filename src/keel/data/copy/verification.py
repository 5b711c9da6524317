"""``keel data verify SRC DST``: does the destination hold what the source holds?

Both sides are listed with the copy's rules (a folder's contents against the
destination folder; the same filters). Each file present on both sides is
compared by size, then by content: by the hashes the stores keep when both keep
one (a blob's Content-MD5 beside a local file's MD5, computed here), else by
reading both sides through SHA-256. Files only at the source are *missing*;
files only at the destination are *extra* (ignored with ``one_way``, as in
``rclone check --one-way``).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.data.copy.listing import Entry, Tree, label, list_destination, list_source, store_kind
from keel.data.copy.options import Filters, Options
from keel.data.copy.prepare import destination_root, refuse_nesting
from keel.data.copy.transfer import STREAM_CHUNK
from keel.data.datastores import storage_errors
from keel.data.locations import Location, resolve_location
from keel.workspace import Workspace


@dataclass(frozen=True)
class Difference:
    """One file that differs: ``kind`` is missing, extra, size or content."""

    path: str
    kind: str
    detail: str = ""


@dataclass
class Verification:
    compared: int = 0
    by_store_hash: int = 0
    by_content: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def verify(
    workspace: Workspace,
    source: str,
    destination: str,
    *,
    options: Options | None = None,
    one_way: bool = False,
    size_only: bool = False,
    concurrency: int = 4,
    base: Path | None = None,
) -> Verification:
    """Compare ``source`` with ``destination``; the result names every differing file."""
    chosen = (options or Options()).check()
    src = resolve_location(workspace, source, base=base)
    dst = resolve_location(workspace, destination, base=base)
    refuse_nesting(src, dst)
    tree = list_source(src)
    root, rename = destination_root(dst, [tree], destination)
    wanted = _wanted(tree, Filters.of(chosen), rename)
    there = list_destination(root) if not (tree.is_file and rename) else _one(root, rename)
    result = Verification()
    pairs = []
    for path, entry in sorted(wanted.items()):
        other = there.get(path)
        if other is None:
            result.differences.append(Difference(path, "missing", "not at the destination"))
        elif other.size != entry.size:
            result.differences.append(
                Difference(path, "size", f"{entry.size} bytes at the source, {other.size} here")
            )
        elif not size_only:
            pairs.append((path, entry, other))
    if not one_way:
        keep = Filters.of(chosen)
        extras = sorted(p for p in there if p not in wanted and (tree.is_file or keep.keeps_path(p)))
        result.differences += [Difference(p, "extra", "only at the destination") for p in extras]
    result.compared = len(wanted)
    _compare_contents(tree, root, pairs, result, concurrency)
    result.differences.sort(key=lambda d: d.path)
    return result


def _wanted(tree: Tree, filters: Filters, rename: str | None) -> dict[str, Entry]:
    if tree.is_file:
        entry = tree.entries[0]
        return {rename or entry.path: entry}
    return {e.path: e for e in tree.entries if filters.keeps_path(e.path) and filters.keeps_time(e.mtime)}


def _one(root: Location, name: str) -> dict[str, Entry]:
    return {path: entry for path, entry in list_destination(root).items() if path == name}


def _compare_contents(
    tree: Tree, root: Location, pairs: list[tuple[str, Entry, Entry]], result: Verification, concurrency: int
) -> None:
    def compare(pair: tuple[str, Entry, Entry]) -> tuple[str, str, str, bool]:
        path, src, dst = pair
        src_path = tree.location.path if tree.is_file else f"{tree.location.path.rstrip('/')}/{path}"
        dst_path = f"{root.path.rstrip('/')}/{path}"
        algorithm = "md5" if (src.md5 or dst.md5) else "sha256"
        left = src.md5 if algorithm == "md5" and src.md5 else _hash(tree.location, src_path, algorithm)
        right = dst.md5 if algorithm == "md5" and dst.md5 else _hash(root, dst_path, algorithm)
        return path, left, right, bool(src.md5 or dst.md5)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for path, left, right, stored in pool.map(compare, pairs):
            if stored:
                result.by_store_hash += 1
            else:
                result.by_content += 1
            if left != right:
                algorithm = "md5" if stored else "sha256"
                result.differences.append(
                    Difference(path, "content", f"{algorithm} {left[:12]}… at the source, {right[:12]}… here")
                )


def _hash(location: Location, path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with storage_errors(label(location)):
        handle: Any
        if store_kind(location.fs) == "local":
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below)
        else:
            handle = location.fs.open(path, "rb", block_size=STREAM_CHUNK, cache_type="none")
        with handle:
            while chunk := handle.read(STREAM_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
