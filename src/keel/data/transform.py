"""A ``type: transform`` step: SQL over the step's inputs, run by DuckDB, written as Parquet.

    jobs:
      join:
        type: transform
        engine: duckdb
        query: >
          SELECT carrier, c.name, avg(delay) AS delay
          FROM flights JOIN carriers AS c USING (carrier)
          WHERE delay >= getvariable('min_delay')
          GROUP BY ALL
        inputs:
          flights: ${{parent.inputs.raw}}              # a folder of CSV files
          carriers: {type: uri_file, path: ./carriers.parquet}
          min_delay: 5
        outputs:
          summary: {type: uri_folder}

- **Tables.** Each data input is a view named after the input: CSV, TSV, Parquet
  or JSON lines files, or folders of them (DuckDB's own readers, columns united by
  name), or an MLTable folder (read by :mod:`keel.data.mltable`).
- **Values.** Each literal input is a DuckDB variable of the same name, read with
  ``getvariable('min_delay')``. It is set with a bound parameter, so a value never
  becomes SQL text.
- **Statements.** The query may hold several (``CREATE TEMP TABLE …; SELECT …``);
  the last one's rows are the result.
- **Output.** ``uri_folder`` (the default): ``<output>/part-0.parquet``. ``mltable``:
  the same file plus an ``MLTable`` that reads ``./*.parquet``. ``uri_file``: the
  Parquet file itself. The output is committed by content, like a command's, and
  only when the query succeeded.
- **Failure.** A query DuckDB refuses fails the step with DuckDB's message, and
  writes nothing; ``engine: spark`` fails as not available yet. Canceling the job
  interrupts the query. Reuse is the runner's: the key covers the engine and the
  query, the literal values and the inputs' content.

The step's log (``keel job stream``) lists the tables and values, the query, and
the rows written. A query can read what the runner's user can, like a command.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keel.data.locations import Location
from keel.data.tabular import find_tabular, register
from keel.errors import KeelError
from keel.jobs.command import LOG_FILE, RunContext, StepResult, _discard, commit_outputs, job_artifacts
from keel.jobs.content import staging_folder
from keel.jobs.graph import Node, Value
from keel.tracking.entities import JobStatus

OUTPUT_FILE = "part-0.parquet"
OUTPUT_MLTABLE = """type: mltable
paths:
  - pattern: ./*.parquet
transformations:
  - read_parquet:
      include_path_column: false
"""
_TABLE_OUTPUTS = ("uri_folder", "uri_file", "mltable")
_CANCEL_POLL_SECONDS = 0.2


class _Failed(Exception):
    """The step cannot produce its output; the message is the job's status reason."""


class _Canceled(Exception):
    pass


def run_transform_step(runner: Any, node: Node) -> StepResult:
    """Run the step's query over its inputs and commit the result (called by the job runner)."""
    context: RunContext = runner.context
    log: list[str] = []
    try:
        return _run(context, node, log)
    finally:
        store, prefix = job_artifacts(context, runner.locations[node.path])
        text = "\n".join(log) + "\n"
        store.write_bytes(f"{prefix}/{LOG_FILE}" if prefix else LOG_FILE, text.encode())


def _run(context: RunContext, node: Node, log: list[str]) -> StepResult:
    component = node.step.component
    try:
        name, kind = _output(node)
    except _Failed as exc:
        return _failure(log, str(exc))
    staged = {name: staging_folder(context.artifacts, context.scratch / ".staging")}
    try:
        target = staged[name] / (name if kind == "uri_file" else OUTPUT_FILE)
        rows = _query(context, node, component.query or "", target, log)
        if kind == "mltable":
            (staged[name] / "MLTable").write_text(OUTPUT_MLTABLE)
        outputs = commit_outputs(context, node, staged)
    except _Canceled:
        _discard(staged)
        log.append("canceled")
        return StepResult(JobStatus.CANCELED, reason="canceled")
    except _Failed as exc:
        _discard(staged)
        return _failure(log, str(exc))
    except (OSError, ValueError) as exc:
        _discard(staged)
        return _failure(log, f"could not commit the output: {exc}")
    log.append(f"wrote {rows} rows to {name}")
    return StepResult(JobStatus.COMPLETED, outputs=outputs)


def _output(node: Node) -> tuple[str, str]:
    component = node.step.component
    if component.engine not in (None, "duckdb"):
        raise _Failed(f"engine {component.engine!r} is not available yet; use engine: duckdb")
    if len(component.outputs) != 1:
        raise _Failed("a transform writes exactly one output")
    name, decl = next(iter(component.outputs.items()))
    if decl.type not in _TABLE_OUTPUTS:
        raise _Failed(f"output {name!r} is a {decl.type}; a transform writes a table (uri_folder, mltable)")
    return name, decl.type


def _failure(log: list[str], reason: str) -> StepResult:
    log.append(f"failed: {reason}")
    return StepResult(JobStatus.FAILED, reason=reason)


def _query(context: RunContext, node: Node, query: str, target: Path, log: list[str]) -> int:
    """Run ``query`` over the node's inputs into the Parquet file ``target``; returns its rows."""
    try:
        import duckdb
    except ImportError:
        raise _Failed("transform steps need DuckDB: pip install duckdb") from None
    spill = context.scratch / f"{node.job_name}.duckdb"
    con = duckdb.connect(config={"temp_directory": str(spill)})
    started = time.monotonic()
    log.append(f"DuckDB {duckdb.__version__}")
    try:
        with _interrupted_on_cancel(con, context.processes.canceled):
            _bind(con, node, context, log)
            log.append(f"query:\n{query.strip()}")
            statements = con.extract_statements(query)
            returning = (duckdb.StatementType.SELECT, duckdb.StatementType.MULTI)  # MULTI: a PIVOT
            if not statements or statements[-1].type not in returning:
                raise _Failed("the query's last statement returns no rows: end it with a SELECT")
            con.sql(query).write_parquet(str(target))
    except duckdb.Error as exc:
        if context.processes.canceled.is_set():
            raise _Canceled from None
        log.append(str(exc))
        raise _Failed(f"the query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    log.append(f"ran in {time.monotonic() - started:.2f} s")
    return _rows(target)


def _bind(con: Any, node: Node, context: RunContext, log: list[str]) -> None:
    """Each data input as a view, each literal input as a variable, all named after the input."""
    for name, value in node.inputs.items():
        if value is None:
            continue
        if value.path is None:
            con.execute(f"SET VARIABLE {_identifier(name)} = ?", [value.literal])
            log.append(f"variable {name} = {value.literal!r}")
            continue
        _bind_table(con, name, value, context, log)


def _bind_table(con: Any, name: str, value: Value, context: RunContext, log: list[str]) -> None:
    import fsspec

    path = str(value.path)
    try:
        table = find_tabular(Location(fsspec.filesystem("file"), path, path))
        if table is None:
            raise _Failed(
                f"input {name!r} is not a table: give CSV, Parquet or JSON lines files, or an MLTable"
            )
        register(con, name, table, workspace=context.workspace)
    except KeelError as exc:
        raise _Failed(f"input {name!r}: {exc}") from None
    files = f", {len(table.files)} file(s)" if table.files else ""
    log.append(f"table {name}: {table.kind}{files} from {value.uri or path}")


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows(target: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(target).num_rows)


@contextlib.contextmanager
def _interrupted_on_cancel(con: Any, canceled: threading.Event) -> Iterator[None]:
    """Interrupt the running query when the job is canceled."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(_CANCEL_POLL_SECONDS):
            if canceled.is_set():
                con.interrupt()
                return

    watcher = threading.Thread(target=watch, name="keel-transform-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
