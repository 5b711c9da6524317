"""Split an input into mini-batches: files of a folder, or row ranges of a table.

* A folder (``uri_folder``) is split by files, ``mini_batch_size`` files each (10 by
  default), as Azure ML does: the scoring script's ``run`` gets their paths.
* A table — a CSV, TSV, Parquet or JSON lines file, or an MLTable folder — is split by
  rows, ``mini_batch_size`` rows each (100,000 by default). A mini-batch is a file
  path and a row range, never the rows themselves: workers read their own rows with
  pyarrow, so nothing large is pickled through a pipe. A Parquet file is read where
  it is, row group by row group; other tables are read once here into an Arrow file
  in the job's scratch folder that workers memory-map.
* Any other single file is one mini-batch of one file.
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.data.tabular import format_of, is_data_name
from keel.endpoints.batch.inputs import InputData
from keel.errors import InvalidInput
from keel.workspace import Workspace

DEFAULT_FILES = 10
DEFAULT_ROWS = 100_000
ARROW_INPUT = "input.arrow"


@dataclass(frozen=True)
class MiniBatch:
    """One unit of work: some files, or rows ``[start, stop)`` of a Parquet or Arrow file."""

    number: int
    files: tuple[str, ...] = ()
    source: str | None = None
    start: int = 0
    stop: int = 0
    group: int = -1  # the Parquet row group ``start`` falls in (-1: reading has no unit to share)

    @property
    def items(self) -> int:
        """What the error threshold counts: files, or rows."""
        return len(self.files) if self.source is None else self.stop - self.start

    def describe(self) -> str:
        if self.source is not None:
            return f"rows {self.start}-{self.stop - 1}"
        more = f" and {len(self.files) - 1} more" if len(self.files) > 1 else ""
        return f"{self.files[0]}{more}"


@dataclass(frozen=True)
class Plan:
    """The mini-batches of one input, and the table's schema when it is tabular."""

    mode: str  # "rows" | "files"
    batches: tuple[MiniBatch, ...]
    schema: Any = None  # pyarrow.Schema of a tabular input

    @property
    def total_items(self) -> int:
        return sum(batch.items for batch in self.batches)

    @property
    def unit(self) -> str:
        return "rows" if self.mode == "rows" else "files"


def plan(
    data: InputData, mini_batch_size: int | None, scratch: Path, workspace: Workspace | None = None
) -> Plan:
    """The mini-batches of ``data``; an empty folder or table is refused, naming it."""
    if data.type == "uri_folder":
        return _by_files(data.path, mini_batch_size or DEFAULT_FILES)
    size = mini_batch_size or DEFAULT_ROWS
    if data.type == "mltable":
        return _by_rows_of_table(_read_table(data.path, workspace), size, scratch, data.path)
    kind = _tabular_kind(data.path)
    if kind == "parquet":
        return _by_rows_of_parquet(data.path, size)
    if kind is not None:
        return _by_rows_of_table(_read_table(data.path, workspace), size, scratch, data.path)
    return Plan("files", (MiniBatch(0, files=(str(data.path),)),))


def _by_files(folder: Path, size: int) -> Plan:
    files = [str(folder / relative) for relative in _data_files(folder)]
    if not files:
        raise InvalidInput(f"the input folder {folder} holds no files to score")
    batches = tuple(
        MiniBatch(number, files=tuple(files[start : start + size]))
        for number, start in enumerate(range(0, len(files), size))
    )
    return Plan("files", batches)


def _data_files(folder: Path) -> list[str]:
    """Files under ``folder``, sorted, leaving out hidden and ``_``-prefixed ones (``_SUCCESS``)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith((".", "_")))
        for name in sorted(filenames):
            relative = (Path(dirpath) / name).relative_to(folder).as_posix()
            if is_data_name(relative) and (Path(dirpath) / name).is_file():
                found.append(relative)
    return found


def _tabular_kind(path: Path) -> str | None:
    kind = format_of(path.name)
    if kind is None and _looks_like_parquet(path):
        return "parquet"
    return kind


def _looks_like_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def _by_rows_of_parquet(path: Path, size: int) -> Plan:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InvalidInput(f"{path} is not a readable Parquet file: {exc}") from None
    rows = metadata.metadata.num_rows
    ends = list(
        itertools.accumulate(metadata.metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    )
    return _row_plan(str(path), rows, size, metadata.schema_arrow, path, group_ends=ends)


def _read_table(path: Path, workspace: Workspace | None) -> Any:
    import fsspec

    from keel.data.locations import Location
    from keel.data.mltable import read_table
    from keel.data.tabular import find_tabular

    table = find_tabular(Location(fsspec.filesystem("file"), str(path), str(path)))
    if table is None:
        raise InvalidInput(
            f"{path} is not tabular data", hint="give CSV, Parquet or JSON lines, or an MLTable"
        )
    return read_table(table, workspace=workspace)


def _by_rows_of_table(table: Any, size: int, scratch: Path, origin: Path) -> Plan:
    """Write the table once as an Arrow file that workers memory-map (zero copies after this)."""
    import pyarrow as pa

    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / ARROW_INPUT
    temporary = target.with_suffix(".partial")
    with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(size, 65_536))
    temporary.replace(target)
    return _row_plan(str(target), table.num_rows, size, table.schema, origin)


def _row_plan(
    source: str, rows: int, size: int, schema: Any, origin: Path, *, group_ends: list[int] | None = None
) -> Plan:
    """Row ranges of ``size``; with Parquet row groups, each range knows the group it starts in,
    so the scheduler can keep a group's mini-batches on one worker (which reads it once)."""
    if rows == 0:
        raise InvalidInput(f"the input {origin} holds no rows to score")
    batches = tuple(
        MiniBatch(
            number,
            source=source,
            start=start,
            stop=min(start + size, rows),
            group=bisect.bisect_right(group_ends, start) if group_ends else -1,
        )
        for number, start in enumerate(range(0, rows, size))
    )
    return Plan("rows", batches, schema)
