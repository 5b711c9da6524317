"""The one output file of ``append_row``: parts assembled in mini-batch order, off the critical path.

Workers write each mini-batch's rows as a part file (Arrow for a Parquet output,
header-less CSV for a CSV one). An assembler thread in the driver appends the parts
to the output file in mini-batch order as they arrive — while later mini-batches
are still scoring — so the output costs little time at the end. It hashes what it
writes, so the file's digest is known without reading it again.

The output is written in a staging folder; the driver publishes it (one rename into
the content store) only when the job succeeds, and removes it otherwise: a failed
job leaves no partial output behind.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_CHUNK = 1024 * 1024
PARQUET_SUFFIXES = (".parquet", ".pq")
ROW_GROUP_ROWS = 262_144


def output_format(file_name: str) -> str:
    """``parquet`` for a ``.parquet``/``.pq`` name; CSV for anything else (``predictions.csv``)."""
    return "parquet" if file_name.lower().endswith(PARQUET_SUFFIXES) else "csv"


_ALL_IN = object()  # what _take returns once every part is in (or the assembly stopped)


class AssemblyError(Exception):
    """The parts cannot be put together (their columns differ); the message says how."""


@dataclass(frozen=True)
class Assembled:
    path: Path
    sha256: str  # hex digest of the file's bytes
    rows: int
    columns: tuple[str, ...]


class Assembler:
    """Appends parts to ``folder/file_name`` in mini-batch order, in a thread of its own."""

    def __init__(self, folder: Path, file_name: str, count: int) -> None:
        self.path = folder / file_name
        self.format = output_format(file_name)
        self._count = count
        self._ready: dict[int, tuple[Path, tuple[str, ...], int] | None] = {}
        self._condition = threading.Condition()
        self._next = 0
        self._rows = 0
        self._columns: tuple[str, ...] | None = None
        self._error: BaseException | None = None
        self._stopped = False
        self._hash = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="keel-batch-output", daemon=True)

    @property
    def part_format(self) -> str:
        return "arrow" if self.format == "parquet" else "csv"

    def start(self) -> None:
        self._thread.start()

    def add(self, number: int, part: Path, columns: tuple[str, ...], rows: int) -> None:
        """Mini-batch ``number`` succeeded: its ``rows`` rows are in ``part``."""
        self._settle(number, (part, columns, rows))

    def skip(self, number: int) -> None:
        """Mini-batch ``number`` failed for good: the output goes on without it."""
        self._settle(number, None)

    def _settle(self, number: int, entry: tuple[Path, tuple[str, ...], int] | None) -> None:
        with self._condition:
            self._ready[number] = entry
            self._condition.notify()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def finish(self) -> Assembled:
        """Wait until every part is in; the file, its digest, rows and columns."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return Assembled(self.path, self._hash.hexdigest(), self._rows, self._columns or ())

    def abort(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        if self._thread.ident is not None:
            self._thread.join()
        for entry in self._ready.values():
            if entry is not None:
                entry[0].unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)  # a partial output is never left behind

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with open(self.path, "wb") as raw:
                sink = _Hashing(raw, self._hash)
                writer = _ParquetParts(sink) if self.format == "parquet" else _CsvParts(sink)
                try:
                    while (entry := self._take()) is not _ALL_IN:
                        if isinstance(entry, tuple):
                            self._append(writer, *entry)
                finally:
                    writer.close()
        except BaseException as exc:  # reported by finish(); the driver fails the job with it
            self._error = exc

    def _take(self) -> tuple[Path, tuple[str, ...], int] | object | None:
        """The next part in order (None: that mini-batch failed), or ``_ALL_IN`` when all are in."""
        with self._condition:
            while self._next < self._count and self._next not in self._ready and not self._stopped:
                self._condition.wait()
            if self._stopped or self._next >= self._count:
                return _ALL_IN
            entry = self._ready.pop(self._next)
            self._next += 1
            return entry

    def _append(
        self, writer: _CsvParts | _ParquetParts, part: Path, columns: tuple[str, ...], rows: int
    ) -> None:
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise AssemblyError(
                f"mini-batch {self._next - 1} returned the columns {list(columns)}, "
                f"earlier ones returned {list(self._columns)}; every mini-batch must return the same"
            )
        writer.append(part, columns)
        self._rows += rows
        part.unlink(missing_ok=True)


class _Hashing:
    """A binary file that hashes what passes through it (pyarrow writes to it as to any file)."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self._raw = raw
        self._digest = digest
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        return self._raw.write(view)

    def flush(self) -> None:
        self._raw.flush()

    def tell(self) -> int:
        return self._raw.tell()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _CsvParts:
    """Header once, then each header-less CSV part's bytes as they are."""

    def __init__(self, sink: _Hashing) -> None:
        self._sink = sink
        self._header_written = False

    def append(self, part: Path, columns: tuple[str, ...]) -> None:
        if not self._header_written:
            self._sink.write(_csv_header(columns))
            self._header_written = True
        with open(part, "rb") as source:
            while chunk := source.read(_CHUNK):
                self._sink.write(chunk)

    def close(self) -> None:
        self._sink.flush()


def _csv_header(columns: tuple[str, ...]) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    empty = pa.table({name: pa.array([], pa.null()) for name in columns})
    sink = pa.BufferOutputStream()
    pcsv.write_csv(empty, sink)
    return bytes(sink.getvalue().to_pybytes())


class _ParquetParts:
    """One Parquet file fed with the Arrow parts, cast to the first part's types; small parts are
    gathered into row groups of at least ``ROW_GROUP_ROWS`` rows."""

    def __init__(self, sink: _Hashing) -> None:
        self._sink = sink
        self._writer: Any = None
        self._schema: Any = None
        self._pending: list[Any] = []
        self._pending_rows = 0

    def append(self, part: Path, columns: tuple[str, ...]) -> None:
        import pyarrow as pa

        with pa.memory_map(str(part), "r") as source:
            table = pa.ipc.open_file(source).read_all()
        if self._schema is None:
            self._schema = table.schema
        elif table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise AssemblyError(
                    f"a mini-batch returned columns of other types than the first: {exc}"
                ) from None
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._sink, self._schema if self._schema is not None else pa.schema([])
            )
        if self._pending_rows:
            table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._writer.write_table(table, row_group_size=self._pending_rows)
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._sink.flush()


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
