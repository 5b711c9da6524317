"""Azure ML ``MLTable`` files, read natively into Arrow.

An MLTable is a folder with a YAML file named ``MLTable`` that says where the data
is and how to load it (Azure's reference-yaml-mltable)::

    type: mltable
    paths:
      - file: ./2024/jan.csv             # one file
      - folder: ./more                   # every data file under a folder, recursively
      - pattern: ./*/*.csv               # a glob: *, ?, [abc], [a-z], **
    transformations:
      - read_delimited: {delimiter: ",", header: all_files_same_headers, encoding: utf8}
      - extract_columns_from_partition_format: "{year}/{month}"
      - convert_column_types:
          - {columns: [delay], column_type: float}
      - keep_columns: [year, month, carrier, delay]
      - take_random_sample: {probability: 0.1, seed: 7}

Paths relative to the MLTable file's folder are read through the same filesystem
(``..`` is allowed only in a local folder outside any datastore: a table in a
datastore cannot reach outside it); ``azureml://datastores/<name>/paths/<p>`` (short or long form)
and fsspec URLs go through :func:`keel.data.locations.resolve_location`. Folders
skip hidden and ``_``-prefixed files (``_SUCCESS``) and the MLTable file itself.
A pattern that matches nothing is an error, so is a file that does not exist.

The first transformation may be a read (``read_delimited``, ``read_parquet``,
``read_json_lines``; see :mod:`keel.data.mltable_files`); without one, the table is
Azure's ``from_paths`` table: one ``Path`` column with a row per file. The rest run
in order (see :mod:`keel.data.mltable_steps`): ``take``, ``skip``,
``take_random_sample``, ``drop_columns``, ``keep_columns``, ``convert_column_types``.
``extract_columns_from_partition_format`` adds its columns as each file is read,
wherever it appears in the list, as Azure's SDK puts it first. ``filter`` and
``read_delta_lake`` are refused with a hint. A problem with the MLTable file,
found when parsing it or when running it (a column it names that the data lacks),
names the file and line; a data file that cannot be parsed is named itself.

Plain data that is not an MLTable reads the same way, as the MLTable it implies
(:func:`read_table`), so ``keel.data.load`` gives the same table for a CSV folder
and for an MLTable over it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from keel.data.locations import Location, resolve_location
from keel.data.tabular import MLTABLE_FILE, Tabular, data_files
from keel.errors import InvalidInput, NotFound
from keel.specs.source import Source, SpecError, parse_yaml
from keel.workspace import Workspace

Where = tuple[str | int, ...]
READERS = ("read_delimited", "read_parquet", "read_json_lines")
STEPS = ("take", "skip", "take_random_sample", "drop_columns", "keep_columns", "convert_column_types")
PARTITIONS = "extract_columns_from_partition_format"
_REFUSED = {
    "filter": "filter is not supported; filter rows in a transform step (type: transform, SQL) instead",
    "read_delta_lake": "read_delta_lake is not supported yet; export the Delta table to Parquet",
}
_TOP_KEYS = {"$schema", "type", "paths", "transformations", "traits", "metadata"}
_PATH_KINDS = ("file", "folder", "pattern")
_LONG_DATASTORE = re.compile(r"^azureml://subscriptions/.+?/datastores/([^/]+)/paths/?(.*)$")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


@dataclass(frozen=True)
class Transformation:
    """One entry of ``transformations``: its name, its argument, and where it was written."""

    name: str
    argument: Any
    where: Where


@dataclass(frozen=True)
class MLTableSpec:
    """A checked MLTable file: where the data is, how to read it, what to do to it."""

    source: Source
    paths: tuple[tuple[str, str, Where], ...]  # (file | folder | pattern, value, where)
    reader: Transformation | None = None
    partition_format: Transformation | None = None
    steps: tuple[Transformation, ...] = field(default_factory=tuple)

    def error(self, where: Where, message: str, *, hint: str | None = None) -> SpecError:
        return self.source.error(where, message, hint=hint)


@dataclass(frozen=True)
class DataFile:
    """A file to read: its filesystem and path there, and the URI people see (the Path column)."""

    fs: Any
    path: str
    uri: str
    local: bool


def read_mltable(folder: Location, *, workspace: Workspace | None = None) -> Any:
    """The ``pyarrow.Table`` the MLTable in ``folder`` describes."""
    spec = load_spec(folder)
    return materialize(spec, resolve_paths(spec, folder, workspace))


def read_table(table: Tabular, *, workspace: Workspace | None = None) -> Any:
    """Any tabular location as a ``pyarrow.Table``: an MLTable, or the MLTable plain files imply."""
    if table.kind == "mltable":
        return read_mltable(table.location, workspace=workspace)
    reader = {"parquet": "read_parquet", "json": "read_json_lines"}.get(table.kind, "read_delimited")
    options = {"delimiter": "\t"} if table.kind == "tsv" else {}
    spec = MLTableSpec(
        source=Source(table.location.uri, None),
        paths=(),
        reader=Transformation(reader, options, ()),
    )
    local = table.location.is_local
    files = [DataFile(table.location.fs, path, _uri_of(table.location, path), local) for path in table.files]
    return materialize(spec, files)


def load_spec(folder: Location) -> MLTableSpec:
    """Read and check the ``MLTable`` file in ``folder``; problems name its file and line."""
    path = f"{folder.path.rstrip('/')}/{MLTABLE_FILE}"
    name = f"{folder.uri.rstrip('/')}/{MLTABLE_FILE}"
    try:
        with folder.fs.open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        raise NotFound(f"no MLTable file in {folder.uri}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{name}: cannot read it ({exc})") from None
    return parse_spec(parse_yaml(text, name), name)


def parse_spec(root: Any, name: str) -> MLTableSpec:
    """Check a parsed MLTable document (from :func:`keel.specs.source.parse_yaml`)."""
    source = Source(name, root)
    if not isinstance(root, dict):
        raise source.error((), "an MLTable file is a mapping with paths and transformations")
    for key in root:
        if key not in _TOP_KEYS:
            raise source.error(
                (key,), f"unknown key {key!r}", hint=f"allowed: {', '.join(sorted(_TOP_KEYS))}"
            )
    if root.get("type", "mltable") != "mltable":
        raise source.error(("type",), f"type must be mltable, not {root['type']!r}")
    paths = _parse_paths(source, root.get("paths"))
    reader, partitions, steps = _parse_transformations(source, root.get("transformations") or [])
    return MLTableSpec(source, paths, reader, partitions, tuple(steps))


def _parse_paths(source: Source, paths: Any) -> tuple[tuple[str, str, Where], ...]:
    if not isinstance(paths, list) or not paths:
        raise source.error(("paths",), "give paths: a list of {file: …}, {folder: …} or {pattern: …}")
    parsed = []
    for index, entry in enumerate(paths):
        where: Where = ("paths", index)
        if not isinstance(entry, dict) or len(entry) != 1:
            raise source.error(where, "each path is one of {file: …}, {folder: …} or {pattern: …}")
        kind, value = next(iter(entry.items()))
        if kind not in _PATH_KINDS:
            raise source.error((*where, kind), f"unknown path kind {kind!r}; use file, folder or pattern")
        if not isinstance(value, str) or not value.strip():
            raise source.error((*where, kind), "expected a path")
        parsed.append((kind, value.strip(), (*where, kind)))
    return tuple(parsed)


def _parse_transformations(
    source: Source, items: Any
) -> tuple[Transformation | None, Transformation | None, list[Transformation]]:
    if not isinstance(items, list):
        raise source.error(("transformations",), "transformations is a list")
    reader = partitions = None
    steps: list[Transformation] = []
    for index, item in enumerate(items):
        step = _transformation(source, item, ("transformations", index))
        if step.name in READERS:
            if index != 0:
                raise source.error(step.where, f"{step.name} must be the first transformation")
            reader = step
        elif step.name == PARTITIONS:
            if partitions is not None:
                raise source.error(step.where, f"{PARTITIONS} may appear only once")
            partitions = Transformation(step.name, _partition_format(source, step), step.where)
        else:
            steps.append(step)
    return reader, partitions, steps


def _transformation(source: Source, item: Any, where: Where) -> Transformation:
    if isinstance(item, str):  # `- read_parquet` with no options
        item = {item: None}
    if not isinstance(item, dict) or len(item) != 1:
        raise source.error(where, "each transformation is a mapping with one key, like `- take: 10`")
    name, argument = next(iter(item.items()))
    here: Where = (*where, name)
    if name in _REFUSED:
        raise source.error(here, _REFUSED[name])
    if name not in (*READERS, *STEPS, PARTITIONS):
        known = ", ".join((*READERS, *STEPS, PARTITIONS))
        raise source.error(here, f"unknown transformation {name!r}", hint=f"known: {known}")
    return Transformation(name, {} if argument is None and name in READERS else argument, here)


def _partition_format(source: Source, step: Transformation) -> str:
    """The format string; also accepts ``{partition_format: …}`` (the SDK's form) and the
    unquoted ``{timestamp:yyyy/MM/dd}``, which YAML reads as a one-key mapping."""
    argument = step.argument
    if isinstance(argument, dict) and set(argument) == {"partition_format"}:
        argument = argument["partition_format"]
    elif isinstance(argument, dict) and len(argument) == 1 and next(iter(argument.values())) is None:
        argument = "{" + str(next(iter(argument))) + "}"
    if not isinstance(argument, str) or "{" not in argument:
        raise source.error(step.where, 'expected a format like "{year}/{month}" or "{date:yyyy/MM/dd}"')
    return argument


# -- paths ------------------------------------------------------------------------------------


def resolve_paths(spec: MLTableSpec, folder: Location, workspace: Workspace | None) -> list[DataFile]:
    """Every file the spec's paths name, in order (each file once)."""
    found: dict[tuple[int, str], DataFile] = {}
    for kind, value, where in spec.paths:
        location = _entry_location(spec, folder, value, where, workspace)
        for data_file in _expand(spec, kind, location, where):
            found.setdefault((id(data_file.fs), data_file.path), data_file)
    return list(found.values())


def _entry_location(
    spec: MLTableSpec, folder: Location, value: str, where: Where, workspace: Workspace | None
) -> Location:
    if long_form := _LONG_DATASTORE.match(value):
        value = f"azureml://datastores/{long_form.group(1)}/paths/{long_form.group(2)}"
    url = _URL.match(value)
    if url is not None and url.group(1).lower() != "file":
        if url.group(1).lower() in ("http", "https"):
            raise spec.error(where, "http(s) paths are not supported; download the file or use a datastore")
        if value.startswith("azureml://") and workspace is None:
            raise spec.error(where, f"{value} needs a workspace to resolve its datastore")
        try:
            return resolve_location(workspace or Workspace.open(), value)
        except InvalidInput as exc:
            raise spec.error(where, exc.message, hint=exc.hint) from None
    return _relative_location(spec, folder, value, where)


def _relative_location(spec: MLTableSpec, folder: Location, value: str, where: Where) -> Location:
    raw = value[len("file://") :] if value.lower().startswith("file://") else value
    if folder.is_local and folder.datastore is None:
        path = posixpath.normpath(posixpath.join(folder.path, raw))
        return Location(folder.fs, path, path)
    if raw.startswith("/"):
        raise spec.error(where, "an MLTable in a datastore names its files relative to its folder")
    try:
        return folder.child(raw)
    except InvalidInput as exc:
        raise spec.error(where, exc.message) from None


def _expand(spec: MLTableSpec, kind: str, location: Location, where: Where) -> list[DataFile]:
    fs, local = location.fs, location.is_local
    if kind == "pattern":
        found = fs.glob(location.path, detail=True).items()
        matches = sorted(path for path, info in found if _is_file(info) and not _hidden(path, location.path))
        if not matches:
            raise spec.error(where, f"the pattern {location.uri} matches no files")
        paths = matches
    elif kind == "folder":
        if not fs.isdir(location.path):
            raise spec.error(where, f"no folder at {location.uri}")
        paths = data_files(fs, location.path)
        if not paths:
            raise spec.error(where, f"the folder {location.uri} holds no data files")
    else:
        if not fs.isfile(location.path):
            raise spec.error(where, f"no file at {location.uri}")
        paths = [location.path]
    return [DataFile(fs, path, _uri_of(location, path), local) for path in paths]


def _hidden(path: str, pattern: str) -> bool:
    """A dot-file or dot-folder the pattern did not name (a shell's ``*`` skips them too)."""
    named = set(pattern.split("/"))
    return any(part.startswith(".") and part not in named for part in path.split("/"))


def _is_file(info: Any) -> bool:
    return isinstance(info, dict) and info.get("type") == "file"


def _uri_of(location: Location, path: str) -> str:
    """How to name a file found under ``location`` (its URI when it has one)."""
    base = location.path.rstrip("/")
    if location.uri == location.path or not (path == base or path.startswith(base + "/")):
        return path  # a plain local path names itself
    return location.uri.rstrip("/") + path[len(base) :]


# -- reading --------------------------------------------------------------------------------


def materialize(spec: MLTableSpec, files: list[DataFile]) -> Any:
    """Read ``files`` as the spec says and run its transformations."""
    from keel.data.mltable_files import read_files
    from keel.data.mltable_steps import apply_step

    table = read_files(spec, files)
    for step in spec.steps:
        table = apply_step(spec, step, table)
    return table
