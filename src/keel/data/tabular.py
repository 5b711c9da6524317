"""Which files hold a table, in which format, and how DuckDB scans them.

A location is tabular when it is

- an MLTable folder (an ``MLTable`` file at its top), or that ``MLTable`` file itself;
- a CSV, TSV, Parquet or JSON lines file (``.csv``, ``.tsv``, ``.parquet``, ``.pq``,
  ``.jsonl``, ``.ndjson``, ``.json``; each also ``.gz``-compressed), or a Parquet
  file under any name (its first bytes say so);
- a folder whose data files all share one of those formats;
- a glob pattern (``data/*.csv``) matching files of one of those formats.

In a folder, files and folders whose names start with ``.`` or ``_`` are not data
(``_SUCCESS``, ``.crc``, Spark's ``_committed_*``), as in Spark and pyarrow, and
files of other kinds (a README) are ignored. A folder mixing formats is not tabular.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from keel.data.locations import Location
from keel.errors import InvalidInput, NotFound
from keel.workspace import Workspace

MLTABLE_FILE = "MLTable"
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}


@dataclass(frozen=True)
class Tabular:
    """A table on a filesystem: an MLTable folder, or data files of one format."""

    kind: str  # "mltable", "parquet", "csv", "tsv" or "json"
    location: Location  # the MLTable folder, or the file or folder as given
    files: tuple[str, ...] = ()  # the data files (paths in location.fs); none for an MLTable


def format_of(path: str) -> str | None:
    """The data format a file name says, or None."""
    name = posixpath.basename(path).lower()
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    return _FORMATS.get(posixpath.splitext(name)[1])


def is_data_name(relative: str) -> bool:
    """False for hidden and ``_``-prefixed files and folders (Spark's markers) and the MLTable file."""
    parts = relative.split("/")
    return parts[-1] != MLTABLE_FILE and not any(part.startswith((".", "_")) for part in parts if part)


def data_files(fs: Any, folder: str) -> list[str]:
    """Every data file under ``folder`` (recursively), sorted, without markers and hidden files."""
    base = folder.rstrip("/")
    found = []
    for path in fs.find(base, withdirs=False):
        relative = path[len(base) :].lstrip("/") if path.startswith(base) else posixpath.basename(path)
        if is_data_name(relative):
            found.append(path)
    return sorted(found)


def find_tabular(location: Location) -> Tabular | None:
    """What table ``location`` holds, or None when it is not tabular data."""
    fs = location.fs
    if not fs.exists(location.path):
        if any(char in location.path for char in "*?["):
            return _matches(location)
        raise NotFound(f"no file or folder at {location.uri}")
    if fs.isdir(location.path):
        if fs.isfile(f"{location.path.rstrip('/')}/{MLTABLE_FILE}"):
            return Tabular("mltable", location)
        return _folder(location)
    if posixpath.basename(location.path) == MLTABLE_FILE:
        return Tabular("mltable", parent_of(location))
    kind = format_of(location.path) or _sniffed(location)
    return Tabular(kind, location, (location.path,)) if kind else None


def _sniffed(location: Location) -> str | None:
    """Parquet by its magic number, for a file whose name says nothing (a ``uri_file`` output)."""
    try:
        with location.fs.open(location.path, "rb") as handle:
            return "parquet" if handle.read(4) == b"PAR1" else None
    except OSError:
        return None


def _folder(location: Location) -> Tabular | None:
    return _of_one_format(location, data_files(location.fs, location.path))


def _matches(location: Location) -> Tabular | None:
    found = location.fs.glob(location.path, detail=True)
    files = sorted(path for path, info in found.items() if info.get("type") == "file")
    if not files:
        raise NotFound(f"nothing matches {location.uri}")
    return _of_one_format(location, files)


def _of_one_format(location: Location, paths: list[str]) -> Tabular | None:
    files = [path for path in paths if format_of(path)]
    kinds = {format_of(path) for path in files}
    if len(kinds) != 1:
        return None
    return Tabular(str(kinds.pop()), location, tuple(files))


def parent_of(location: Location) -> Location:
    """The folder holding a file location."""
    relative = posixpath.dirname(location.relative) if location.relative is not None else None
    uri = location.uri.rsplit("/", 1)[0] if "/" in location.uri else location.uri
    return Location(location.fs, posixpath.dirname(location.path), uri, location.datastore, relative)


def register(con: Any, name: str, table: Tabular, *, workspace: Workspace | None = None) -> None:
    """Make ``table`` a view called ``name`` in the DuckDB connection ``con``.

    Local files are read by DuckDB's own readers (parallel, streaming); files on
    other filesystems through a pyarrow dataset over fsspec, which DuckDB scans
    lazily too; an MLTable is read into Arrow by :mod:`keel.data.mltable` first.
    """
    if table.kind == "mltable":
        from keel.data.mltable import read_mltable

        con.register(name, read_mltable(table.location, workspace=workspace))
        return
    files = list(table.files)
    if not files:
        raise InvalidInput(f"{table.location.uri} holds no data files")
    if not table.location.is_local:
        con.register(name, _arrow_dataset(table))
        return
    if table.kind == "parquet":
        relation = con.read_parquet(files, union_by_name=True)
    elif table.kind == "json":
        relation = con.read_json(files, format="newline_delimited")
    else:
        relation = con.read_csv(files, union_by_name=True, sep="\t" if table.kind == "tsv" else ",")
    relation.create_view(name)


def _arrow_dataset(table: Tabular) -> Any:
    import pyarrow.dataset as ds

    if table.kind == "parquet":
        return ds.dataset(table.files, filesystem=table.location.fs, format="parquet")
    if table.kind == "json":
        return ds.dataset(table.files, filesystem=table.location.fs, format="json")
    parse = ds.CsvFileFormat(parse_options=_csv_parse_options(table.kind))
    return ds.dataset(table.files, filesystem=table.location.fs, format=parse)


def _csv_parse_options(kind: str) -> Any:
    import pyarrow.csv as pacsv

    return pacsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
