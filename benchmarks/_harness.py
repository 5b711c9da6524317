"""What every benchmark shares: repeated timings, a table on stdout, a JSON file in results/.

Each benchmark script measures Keel and its peer in the same run, one after the other,
so both meet the same machine in the same state. Figures are medians of several
repetitions because the machines these run on are small and noisy.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import platform
import shlex
import sqlite3
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
POSTGRES_ADMIN_URL = os.environ.get(
    "KEEL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Result:
    """One line of a benchmark's table: a named figure, its target and whether it is met."""

    name: str
    value: float
    unit: str
    samples: list[float] = field(default_factory=list)
    target: str | None = None
    passed: bool | None = None
    note: str = ""


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def repeat(measure: Callable[[], float], times: int) -> list[float]:
    """Run ``measure`` (which returns seconds) ``times`` times; a GC pass before each."""
    samples = []
    for _ in range(times):
        gc.collect()
        samples.append(measure())
    return samples


def command() -> str:
    """How this script was started, as a shell line (what RESULTS.md quotes)."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(BENCHMARKS.parent))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **{name: installed(name) for name in ("keelml", "mlflow", "sqlalchemy", "psycopg")},
    }


def report(benchmark: str, title: str, results: list[Result], **details: Any) -> Path:
    """Print ``results`` as a table and write them, with the command, to results/<name>.json."""
    print_table(title, results)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{benchmark}.json"
    payload = {
        "benchmark": benchmark,
        "command": command(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        **details,
        "results": [asdict(result) for result in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path.relative_to(BENCHMARKS.parent)}")
    return path


def figure(value: float, unit: str) -> str:
    """``276,483 points/s``, ``23.0 ms``, ``0.344 s``: whole numbers once they are large."""
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}" if value < 10 else f"{value:.1f} {unit}"


def print_table(title: str, results: list[Result]) -> None:
    rows = [
        (
            result.name,
            figure(result.value, result.unit),
            result.target or "",
            {True: "pass", False: "FAIL", None: ""}[result.passed],
            result.note,
        )
        for result in results
    ]
    header = ("", "median", "target", "", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())


def rate_at_median(points: int, seconds: Sequence[float]) -> float:
    """Points per second at the median duration."""
    return points / median(seconds)


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the benchmark server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable() -> bool:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


# MLflow 3 sends usage telemetry from a background thread; off, so that only the work
# being measured runs (and nothing waits on a network this machine may not have).
MLFLOW_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
}


def quiet_mlflow() -> None:
    """Switch off MLflow's telemetry, and its log lines and warnings that would break tables."""
    os.environ.update(MLFLOW_QUIET_ENV)
    warnings.filterwarnings("ignore")
    import mlflow  # noqa: F401  (it configures its loggers on import; override them after)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
