"""What runs inside a worker process: set up once (``init()``), then score mini-batches.

A worker receives :class:`Assignment` messages over a pipe — a mini-batch to score,
and the one likely to follow, whose rows it starts reading in a thread meanwhile —
and answers each with a :class:`Scored`. It reads its own rows (pyarrow: the row
groups of a Parquet file, or slices of a memory-mapped Arrow file), calls the scoring
script's ``run(mini_batch)`` or the model's ``predict``, and writes the result as its
own part file, which the driver assembles in order. What the script prints goes to
the job's log.

The scoring script follows Azure ML: ``init()`` once per worker, with
``AZUREML_MODEL_DIR`` naming the model's folder, then ``run(mini_batch)`` with a list
of file paths (folder inputs) or a pandas DataFrame (tabular inputs), returning a
list, an array, a Series or a DataFrame. Without a script, an MLflow model predicts
and its predictions are appended to the input rows.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.endpoints.batch.planning import MiniBatch

PREDICTION = "prediction"
_SCRIPT_MODULE = "keel_batch_scoring_script"


@dataclass(frozen=True)
class Scoring:
    """Everything a worker needs; built by the driver before the workers start."""

    model_dir: Path
    parts: Path  # where part files go
    part_format: str  # "arrow" | "csv"
    output_action: str = "append_row"
    script: Path | None = None  # the scoring script, in a private copy of the code
    model: Any = None  # an opened model for scoring without a script (inherited by fork)
    environment: dict[str, str] = field(default_factory=dict)
    logging_level: str = "info"
    threads: int | None = None  # BLAS/OpenMP/Arrow threads per worker; None: the library defaults


@dataclass(frozen=True)
class Assignment:
    """Score ``task``; ``read_ahead`` is likely this worker's next one: its rows can be read meanwhile."""

    task: MiniBatch
    read_ahead: MiniBatch | None = None


@dataclass(frozen=True)
class Ready:
    """The worker ran ``init()`` and waits for work."""

    pid: int


@dataclass(frozen=True)
class InitFailed:
    error: str


@dataclass(frozen=True)
class Scored:
    """How one attempt at a mini-batch went."""

    number: int
    error: str | None = None
    part: str | None = None
    rows: int = 0  # output rows written to the part
    columns: tuple[str, ...] = ()
    seconds: float = 0.0


class ScoringError(Exception):
    """A mini-batch could not be scored for a reason the message states in full."""


def serve(connection: Any, scoring: Scoring, worker: int, log_fd: int | None) -> None:
    """A worker's life: set up, answer ``Ready`` (or ``InitFailed``), then score until told to stop."""
    os.setpgid(0, 0)  # its own process group: a timeout stops whatever the script started too
    _route_output(log_fd)
    _configure(scoring, worker)
    try:
        scorer = _scorer(scoring)
    except BaseException as exc:  # init() may raise anything; the driver fails the job with it
        traceback.print_exc()
        connection.send(InitFailed(describe(exc)))
        return
    connection.send(Ready(os.getpid()))
    reader = ReadAhead()
    while True:
        try:
            assignment = connection.recv()
        except (EOFError, OSError):
            return
        if assignment is None:
            return
        if assignment.read_ahead is not None:
            reader.start(assignment.read_ahead)
        connection.send(score_one(scorer, reader, assignment.task, scoring))


def _route_output(log_fd: int | None) -> None:
    """Send the worker's stdout and stderr (print, logging, tracebacks) to the job's log."""
    if log_fd is None:
        return
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115


def _configure(scoring: Scoring, worker: int) -> None:
    os.environ.update(scoring.environment)
    os.environ["AZUREML_MODEL_DIR"] = str(scoring.model_dir)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [worker {worker}] %(message)s"))
    root.addHandler(handler)
    root.setLevel(scoring.logging_level.upper())
    if scoring.threads is not None:
        _limit_threads(scoring.threads)


def _limit_threads(threads: int) -> None:
    """Workers share the cores: each gets its share of BLAS, OpenMP and Arrow threads."""
    import pyarrow as pa

    pa.set_cpu_count(threads)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # scikit-learn brings it; without it the libraries keep their defaults
        return
    threadpool_limits(threads)


# -- scorers -----------------------------------------------------------------------------------


class _ScriptScorer:
    """An Azure ML scoring script: ``init()`` here, ``run(mini_batch)`` per mini-batch."""

    def __init__(self, path: Path) -> None:
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        os.chdir(folder)
        spec = importlib.util.spec_from_file_location(_SCRIPT_MODULE, path)
        if spec is None or spec.loader is None:
            raise ScoringError(f"cannot load the scoring script {path.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_SCRIPT_MODULE] = module
        spec.loader.exec_module(module)
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScoringError(f"the scoring script {path.name} defines no {name}() function")
        module.init()
        self.run = module.run

    def rows(self, table: Any) -> Any:
        return self.run(table.to_pandas())

    def files(self, paths: list[str]) -> Any:
        return self.run(paths)


class _ModelScorer:
    """No-code scoring of an MLflow model: predictions appended to the input rows."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def rows(self, table: Any) -> Any:
        frame = self.model.validate(table.to_pandas())
        return _append_predictions(table, self.model.predict(frame))

    def files(self, paths: list[str]) -> Any:
        import pyarrow as pa

        tables = [read_file_table(path) for path in paths]
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ScoringError(
                f"the files of this mini-batch do not share one set of columns: {exc}"
            ) from None
        return self.rows(table)


def _scorer(scoring: Scoring) -> _ScriptScorer | _ModelScorer:
    if scoring.script is not None:
        return _ScriptScorer(scoring.script)
    if scoring.model is None:
        raise ScoringError("no scoring script and no model to predict with")
    return _ModelScorer(scoring.model)


def read_file_table(path: str) -> Any:
    """One CSV, TSV, Parquet or JSON lines file as an Arrow table (no-code scoring of folders)."""
    from keel.data.tabular import format_of

    kind = format_of(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if kind in ("csv", "tsv"):
        import pyarrow.csv as pcsv

        options = pcsv.ParseOptions(delimiter="\t" if kind == "tsv" else ",")
        return pcsv.read_csv(path, parse_options=options)
    if kind == "json":
        import pyarrow.json as pjson

        return pjson.read_json(path)
    raise ScoringError(f"{Path(path).name} is not a CSV, TSV, Parquet or JSON lines file")


def _append_predictions(table: Any, predictions: Any) -> Any:
    import pyarrow as pa

    produced = as_table(predictions)
    if produced.num_rows != table.num_rows:
        raise ScoringError(f"the model returned {produced.num_rows} predictions for {table.num_rows} rows")
    for name, column in zip(produced.column_names, produced.columns, strict=True):
        label = name
        while label in table.column_names:
            label = f"{label}_"
        table = table.append_column(pa.field(label, column.type), column)
    return table


# -- one mini-batch ------------------------------------------------------------------------------


def score_one(
    scorer: _ScriptScorer | _ModelScorer, reader: ReadAhead, task: MiniBatch, scoring: Scoring
) -> Scored:
    """Score ``task``; any exception becomes the mini-batch's error (the log gets the traceback)."""
    started = time.perf_counter()
    try:
        rows = task.source is not None
        result = scorer.rows(reader.rows(task)) if rows else scorer.files(list(task.files))
        if scoring.output_action == "summary_only":
            return Scored(task.number, seconds=time.perf_counter() - started)
        if result is None:
            raise ScoringError("run() returned None; return a list, an array or a DataFrame")
        table = as_table(result)
        part = _write_part(table, scoring, task.number)
    except Exception as exc:
        sys.stderr.write(f"mini-batch {task.number} ({task.describe()}) failed:\n")
        traceback.print_exc()
        return Scored(task.number, error=describe(exc), seconds=time.perf_counter() - started)
    return Scored(
        task.number,
        part=str(part),
        rows=table.num_rows,
        columns=tuple(table.column_names),
        seconds=time.perf_counter() - started,
    )


def as_table(result: Any) -> Any:
    """What ``run()`` or ``predict()`` returned, as an Arrow table."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pd.DataFrame):
        return pa.Table.from_pandas(result, preserve_index=False)
    if isinstance(result, pd.Series):
        name = str(result.name) if result.name is not None else PREDICTION
        return pa.table({name: pa.Array.from_pandas(result)})
    if isinstance(result, np.ndarray):
        if result.ndim == 1:
            return pa.table({PREDICTION: pa.array(result)})
        if result.ndim == 2:
            return pa.table({f"{PREDICTION}_{i}": pa.array(result[:, i]) for i in range(result.shape[1])})
        raise ScoringError(f"an array of {result.ndim} dimensions cannot be written as rows")
    if isinstance(result, list | tuple):
        return pa.table({PREDICTION: _array_of(list(result))})
    raise ScoringError(f"run() returned a {type(result).__name__}; return a list, an array or a DataFrame")


def _array_of(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed or odd values: written as text, as Azure does
        return pa.array([None if value is None else str(value) for value in values], type=pa.string())


def _write_part(table: Any, scoring: Scoring, number: int) -> Path:
    """The mini-batch's output as its own file, written whole or not at all."""
    import pyarrow as pa

    final = scoring.parts / f"{number:09d}-{uuid.uuid4().hex[:8]}.{scoring.part_format}"
    temporary = final.with_name(final.name + ".partial")
    if scoring.part_format == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, str(temporary), write_options=pcsv.WriteOptions(include_header=False))
    else:
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    temporary.replace(final)
    return final


def describe(exc: BaseException) -> str:
    """``ValueError: message (score.py, line 12)``: the error and where the user's code raised it."""
    text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ScoringError) else str(exc)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not _is_library(frame.filename):
            return f"{text} ({Path(frame.filename).name}, line {frame.lineno})"
    return text


def _is_library(filename: str) -> bool:
    """Keel's own frames and installed packages' are not where a user looks for the bug."""
    import keel

    keel_root = str(Path(keel.__file__).parent)
    return filename.startswith(keel_root) or "site-packages" in filename or filename.startswith("<")


# -- reading rows ------------------------------------------------------------------------------


class ReadAhead:
    """Rows read in a thread of the worker's own, so the next mini-batch's rows are read (pyarrow
    releases the GIL) while this one is scored; one reading thread, so reads stay in order."""

    _KEPT = 2

    def __init__(self) -> None:
        self._reader = RowReader()
        self._threads: Any = None
        self._started: dict[tuple[str, int, int], Any] = {}

    def start(self, batch: MiniBatch) -> None:
        if batch.source is None:
            return
        key = (batch.source, batch.start, batch.stop)
        if key in self._started:
            return
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor

            self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-read-ahead")
        while len(self._started) >= self._KEPT:  # a hint that was not followed: drop the oldest
            self._started.pop(next(iter(self._started)))
        self._started[key] = self._threads.submit(self._reader.rows, *key)

    def rows(self, batch: MiniBatch) -> Any:
        self.start(batch)
        return self._started.pop((batch.source or "", batch.start, batch.stop)).result()


class RowReader:
    """Rows ``[start, stop)`` of a Parquet or Arrow file, keeping the last row groups read."""

    def __init__(self) -> None:
        self._parquet: dict[str, tuple[Any, list[int]]] = {}
        self._arrow: dict[str, Any] = {}
        self._last: tuple[tuple[str, tuple[int, ...]], Any, int] | None = None

    def rows(self, source: str, start: int, stop: int) -> Any:
        if source.endswith(".arrow"):
            return self._arrow_table(source).slice(start, stop - start)
        parquet, offsets = self._parquet_file(source)
        groups = tuple(
            index
            for index in range(len(offsets) - 1)
            if offsets[index] < stop and offsets[index + 1] > start and offsets[index + 1] > offsets[index]
        )
        key = (source, groups)
        if self._last is not None and self._last[0] == key:
            table, first = self._last[1], self._last[2]
        else:
            table, first = parquet.read_row_groups(list(groups), use_threads=True), offsets[groups[0]]
            self._last = (key, table, first)
        return table.slice(start - first, stop - start)

    def _parquet_file(self, source: str) -> tuple[Any, list[int]]:
        found = self._parquet.get(source)
        if found is None:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(source, memory_map=True)
            offsets = [0]
            for index in range(parquet.metadata.num_row_groups):
                offsets.append(offsets[-1] + parquet.metadata.row_group(index).num_rows)
            found = self._parquet[source] = (parquet, offsets)
        return found

    def _arrow_table(self, source: str) -> Any:
        table = self._arrow.get(source)
        if table is None:
            import pyarrow as pa

            table = self._arrow[source] = pa.ipc.open_file(pa.memory_map(source, "r")).read_all()
        return table
