"""The read transformations of an MLTable: delimited text, Parquet and JSON lines into Arrow.

Each file is read on its own, then the tables are stacked with their columns
unified by name (a column that is integer in one file and float in another
becomes float). ``include_path_column`` adds ``Path``, the file's URI;
``extract_columns_from_partition_format`` adds the columns its format names,
taken from each file's path.

``read_delimited``
    ``delimiter`` (one character, default ``,``); ``header``: ``all_files_same_headers``
    (default: the first file's names, every other file's first line skipped),
    ``from_first_file`` (other files have no header line), ``no_header`` (columns
    ``Column1``, ``Column2``…), ``all_files_different_headers`` (each file's own,
    combined by name); ``encoding`` (utf8, utf8bom, iso88591, latin1, ascii, utf16,
    utf32, windows1252); ``empty_as_string`` (default false: an empty field is null;
    only empty fields are, not "NA"); ``infer_column_types`` (default true; false keeps
    every column text); ``support_multi_line`` (quoted line breaks; default false, as
    in Azure); ``include_path_column``; ``partition_size`` (accepted, not needed).
``read_parquet``
    ``include_path_column``.
``read_json_lines``
    ``include_path_column``; ``invalid_lines``: ``error`` (default) or ``drop``;
    ``encoding``; ``partition_size``.

Partition formats: ``{name}`` is a text column, ``{name:yyyy/MM/dd/HH/mm/ss}`` (any
of those parts, with any separators) a timestamp column. The format is matched
against the end of each file's path and may leave out the file name, so
``"{year}/{month}"`` reads ``…/2024/01/jan.csv`` as year ``2024``, month ``01``; a
leading ``/`` changes nothing. A file whose path does not match is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from keel.data.mltable import DataFile, MLTableSpec, Transformation, Where
from keel.errors import InvalidInput

PATH_COLUMN = "Path"
_ENCODINGS = {
    "utf8": "utf8",
    "utf-8": "utf8",
    "utf8bom": "utf-8-sig",
    "iso88591": "latin-1",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "windows1252": "cp1252",
}
_HEADERS = ("all_files_same_headers", "from_first_file", "no_header", "all_files_different_headers")
_OPTIONS: dict[str, dict[str, type]] = {
    "read_delimited": {
        "delimiter": str,
        "header": str,
        "encoding": str,
        "empty_as_string": bool,
        "include_path_column": bool,
        "infer_column_types": bool,
        "support_multi_line": bool,
        "partition_size": int,
    },
    "read_parquet": {"include_path_column": bool},
    "read_json_lines": {
        "include_path_column": bool,
        "invalid_lines": str,
        "encoding": str,
        "partition_size": int,
    },
}
_DATE_PARTS = {
    "yyyy": r"\d{4}",
    "MM": r"\d{1,2}",
    "dd": r"\d{1,2}",
    "HH": r"\d{1,2}",
    "mm": r"\d{1,2}",
    "ss": r"\d{1,2}",
}
_PLACEHOLDER = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")


def read_files(spec: MLTableSpec, files: list[DataFile]) -> Any:
    """One Arrow table from ``files``, read as the spec's read transformation says."""
    import pyarrow as pa

    partitions = _partitions(spec)
    if spec.reader is None:  # Azure's from_paths: a table of the files themselves
        tables = [pa.table({PATH_COLUMN: [data_file.uri]}) for data_file in files]
        return _stack(spec, [partitions.add(t, f) for t, f in zip(tables, files, strict=True)])
    options = _options(spec, spec.reader)
    read = {"read_delimited": _delimited, "read_parquet": _parquet, "read_json_lines": _json_lines}
    tables = read[spec.reader.name](spec, files, options)
    path_column = bool(options.get("include_path_column", False))
    for index, data_file in enumerate(files):
        if path_column:
            column = (PATH_COLUMN, data_file.uri, pa.string())
            tables[index] = _constant(spec, tables[index], column, spec.reader.where)
        tables[index] = partitions.add(tables[index], data_file)
    return _stack(spec, tables)


def _options(spec: MLTableSpec, reader: Transformation) -> dict[str, Any]:
    name, options, where = reader.name, reader.argument, reader.where
    if not isinstance(options, dict):
        raise spec.error(where, f"{name} takes a mapping of options")
    allowed = _OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            raise spec.error((*where, key), f"unknown option {key!r}", hint=f"allowed: {', '.join(allowed)}")
        if not isinstance(value, allowed[key]) or (allowed[key] is int and isinstance(value, bool)):
            raise spec.error((*where, key), f"{key} should be a {allowed[key].__name__}")
    _check_choice(spec, (*where, "header"), options.get("header"), _HEADERS)
    _check_choice(spec, (*where, "encoding"), options.get("encoding"), tuple(_ENCODINGS))
    _check_choice(spec, (*where, "invalid_lines"), options.get("invalid_lines"), ("error", "drop"))
    if len(options.get("delimiter", ",")) != 1:
        raise spec.error((*where, "delimiter"), "the delimiter must be exactly one character")
    return options


def _check_choice(spec: MLTableSpec, where: Where, value: Any, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise spec.error(where, f"{value!r} is not one of {', '.join(choices)}")


def _stack(spec: MLTableSpec, tables: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        where = spec.reader.where if spec.reader else ("paths",)
        raise spec.error(where, f"the files do not fit one table: {exc}") from None


@contextlib.contextmanager
def _opened(data_file: DataFile) -> Iterator[Any]:
    """A path pyarrow opens itself (local: fast, detects .gz), or an fsspec file object."""
    if data_file.local:
        yield data_file.path
        return
    with data_file.fs.open(data_file.path, "rb", compression="infer") as handle:
        yield handle


def _unreadable(data_file: DataFile, what: str, exc: Exception) -> InvalidInput:
    return InvalidInput(f"{data_file.uri}: cannot read it as {what}: {exc}")


# -- delimited text -----------------------------------------------------------------------


def _delimited(spec: MLTableSpec, files: list[DataFile], options: dict[str, Any]) -> list[Any]:
    import pyarrow.csv as pacsv

    header = options.get("header", "all_files_same_headers")
    encoding = _ENCODINGS[options.get("encoding", "utf8")]
    parse = pacsv.ParseOptions(
        delimiter=options.get("delimiter", ","),
        newlines_in_values=bool(options.get("support_multi_line", False)),
    )
    names: list[str] | None = None
    tables = []
    for index, data_file in enumerate(files):
        if header == "all_files_different_headers" or (index == 0 and header != "no_header"):
            read = pacsv.ReadOptions(encoding=encoding)
        elif names is None:
            read = pacsv.ReadOptions(encoding=encoding, autogenerate_column_names=True)
        else:
            skip = 1 if header == "all_files_same_headers" else 0
            read = pacsv.ReadOptions(encoding=encoding, column_names=names, skip_rows=skip)
        table = _read_csv(data_file, read, parse, options)
        if names is None and header == "no_header":
            table = table.rename_columns([f"Column{i + 1}" for i in range(table.num_columns)])
        names = names or table.column_names
        tables.append(table)
    return tables


def _read_csv(data_file: DataFile, read: Any, parse: Any, options: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        null_values=[""],
        strings_can_be_null=not options.get("empty_as_string", False),
        quoted_strings_can_be_null=not options.get("empty_as_string", False),
    )
    try:
        if not options.get("infer_column_types", True):
            names = read.column_names or _csv_names(data_file, read, parse)
            convert.column_types = {name: pa.string() for name in names}
        with _opened(data_file) as source:
            table = pacsv.read_csv(source, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, UnicodeError) as exc:
        raise _unreadable(data_file, "delimited text", exc) from None
    if options.get("empty_as_string", False):  # a column of nothing but empty fields is text
        for index, column in enumerate(table.schema):
            if pa.types.is_null(column.type):
                table = table.set_column(index, column.name, pa.repeat(pa.scalar(""), table.num_rows))
    return table


def _csv_names(data_file: DataFile, read: Any, parse: Any) -> list[str]:
    import pyarrow.csv as pacsv

    with (
        _opened(data_file) as source,
        pacsv.open_csv(source, read_options=read, parse_options=parse) as reader,
    ):
        return list(reader.schema.names)


# -- Parquet and JSON lines ------------------------------------------------------------------


def _parquet(spec: MLTableSpec, files: list[DataFile], options: dict[str, Any]) -> list[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for data_file in files:
        try:
            with _opened(data_file) as source:
                tables.append(pq.read_table(source))
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(data_file, "Parquet", exc) from None
    return tables


def _json_lines(spec: MLTableSpec, files: list[DataFile], options: dict[str, Any]) -> list[Any]:
    import pyarrow as pa
    import pyarrow.json as pajson

    encoding = _ENCODINGS[options.get("encoding", "utf8")]
    drop = options.get("invalid_lines", "error") == "drop"
    tables = []
    for data_file in files:
        try:
            with _opened(data_file) as source:
                if encoding == "utf8" and not drop:
                    tables.append(pajson.read_json(source))
                    continue
                data = _json_bytes(source, encoding, drop)
            tables.append(pajson.read_json(io.BytesIO(data)))
        except (pa.ArrowInvalid, UnicodeError) as exc:
            raise _unreadable(data_file, "JSON lines", exc) from None
    return tables


def _json_bytes(source: Any, encoding: str, drop: bool) -> bytes:
    """The file as UTF-8 JSON lines, without the lines that are not JSON objects when ``drop``."""
    import pyarrow as pa

    with pa.input_stream(source) if isinstance(source, str) else contextlib.nullcontext(source) as stream:
        raw = bytes(stream.read())
    text = raw.decode("utf-8-sig" if encoding == "utf8" else encoding)
    if not drop:
        return text.encode()
    kept = [line for line in text.splitlines() if line.strip() and _is_object(line)]
    return "\n".join(kept).encode()


def _is_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# -- columns from paths ----------------------------------------------------------------------


def _constant(spec: MLTableSpec, table: Any, column: tuple[str, Any, Any], where: Where) -> Any:
    """``table`` with a column holding one value (name, value, Arrow type) on every row."""
    import pyarrow as pa

    name, value, kind = column
    if name in table.column_names:
        raise spec.error(where, f"the data has a column {name!r} already")
    return table.append_column(name, pa.repeat(pa.scalar(value, kind), table.num_rows))


class _Partitions:
    """Adds the columns a partition format names to each file's table."""

    def __init__(self, spec: MLTableSpec, pattern: re.Pattern[str] | None, columns: list[tuple[str, bool]]):
        self.spec, self.pattern, self.columns = spec, pattern, columns

    def add(self, table: Any, data_file: DataFile) -> Any:
        if self.pattern is None or self.spec.partition_format is None:
            return table
        import pyarrow as pa

        where = self.spec.partition_format.where
        match = self.pattern.search(data_file.path)
        if match is None:
            fmt = self.spec.partition_format.argument
            raise self.spec.error(where, f"{data_file.uri} does not match the partition format {fmt!r}")
        for index, (name, is_date) in enumerate(self.columns):
            value = _date_value(self.spec, where, match, index) if is_date else match.group(f"c{index}")
            kind = pa.timestamp("us") if is_date else pa.string()
            table = _constant(self.spec, table, (name, value, kind), where)
        return table


def _partitions(spec: MLTableSpec) -> _Partitions:
    if spec.partition_format is None:
        return _Partitions(spec, None, [])
    fmt = str(spec.partition_format.argument).lstrip("/")
    body, columns, position = "", [], 0
    for index, found in enumerate(_PLACEHOLDER.finditer(fmt)):
        body += re.escape(fmt[position : found.start()])
        name, date_format = found.group(1).strip(), found.group(2)
        columns.append((name, date_format is not None))
        body += _date_pattern(index, date_format) if date_format else f"(?P<c{index}>[^/]+?)"
        position = found.end()
    body += re.escape(fmt[position:])
    if len({name for name, _ in columns}) != len(columns):
        raise spec.error(spec.partition_format.where, "a column is named twice in the partition format")
    return _Partitions(spec, re.compile(f"(?:^|/){body}(?:/[^/]*)?$"), columns)


def _date_pattern(index: int, date_format: str) -> str:
    parts = re.split(r"(yyyy|MM|dd|HH|mm|ss)", date_format)
    return "".join(
        f"(?P<c{index}_{part}>{_DATE_PARTS[part]})" if part in _DATE_PARTS else re.escape(part)
        for part in parts
    )


def _date_value(spec: MLTableSpec, where: Where, match: re.Match[str], index: int) -> datetime:
    found = match.groupdict()

    def part(name: str, default: int) -> int:
        value = found.get(f"c{index}_{name}")
        return int(value) if value is not None else default

    try:
        return datetime(
            part("yyyy", 1), part("MM", 1), part("dd", 1), part("HH", 0), part("mm", 0), part("ss", 0)
        )
    except ValueError as exc:
        raise spec.error(where, f"{match.group(0)!r} is not a date: {exc}") from None
