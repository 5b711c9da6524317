"""Fresh processes for the jobs benchmarks: how they start, how they are timed, and Prefect's venv.

The jobs criteria are about whole processes started from a shell, so every figure
here is the wall time of a child process from spawn to exit. The children start
with the environment a user's shell gives them, with two exceptions made alike for
Keel and for Prefect:

- Nothing of the benchmark's own configuration leaks in (``KEEL_*``, ``MLFLOW_*``
  and ``PREFECT_*`` variables are dropped; each run says what it sets).
- Python caches bytecode, as it does by default. The shells on the benchmark
  machine set ``PYTHONDONTWRITEBYTECODE=1``, which, with Keel installed in
  editable mode, means every Keel module is compiled from source at every start;
  an installed package, or any Python without that variable, reads its ``.pyc``.
  So the children run without that variable and with ``PYTHONPYCACHEPREFIX``
  pointing at a scratch folder (nothing is written into the source tree), warmed
  by one untimed run. Each script also reports Keel's figure with the variable set.

Prefect 3 is not installed into Keel's virtualenv: it pins ``fastapi<0.151`` and
would downgrade the FastAPI that MLflow's server runs on there (0.165 to 0.150),
besides adding some sixty packages. :func:`prefect_python` builds a virtualenv of
its own, once, with this interpreter's Python and ``pip install 'prefect>=3,<4'``.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
PREFECT_REQUIREMENT = "prefect>=3,<4"
DEFAULT_PREFECT_VENV = Path(tempfile.gettempdir()) / "keel-bench-prefect3"
# Prefect's ephemeral server sends usage telemetry at start; the benchmark machine has
# no network (it logs an error), and no measured work should wait on one.
PREFECT_QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
# What the results files say about the children's bytecode (see the docstring).
BYTECODE = "PYTHONPYCACHEPREFIX=<scratch folder>, PYTHONDONTWRITEBYTECODE unset"


class ProcessFailed(SystemExit):
    """A child process exited non-zero (uncaught, it ends the benchmark with its output)."""


@dataclass
class Finished:
    """A child process that exited 0: its wall time and the JSON line it printed last."""

    seconds: float
    report: dict[str, Any]
    spawned_at: float  # time.time() just before the spawn, to compare with the child's marks


def fresh_env(pycache: Path | None, **variables: str) -> dict[str, str]:
    """The environment of a child process; ``pycache=None`` keeps PYTHONDONTWRITEBYTECODE=1."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KEEL_", "MLFLOW_", "PREFECT_", "PYTHONPYCACHEPREFIX"))
    }
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(variables)
    return env


def run_timed(argv: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 600) -> Finished:
    """Run ``argv`` to the end; its wall time and its last stdout line read as JSON (if any)."""
    spawned_at = time.time()
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise ProcessFailed(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return Finished(seconds, json.loads(lines[-1]) if lines else {}, spawned_at)


def median_gap_ms(stamps: list[float]) -> float:
    """The median interval between consecutive ``time.perf_counter()`` stamps, in ms."""
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(stamps))
    middle = len(gaps) // 2
    gap = gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2
    return gap * 1000


def bare_python_start(env: dict[str, str], cwd: Path, times: int) -> list[float]:
    """Wall seconds of ``python -c pass`` (this virtualenv's python), after one untimed call."""
    argv = [str(BIN / "python"), "-c", "pass"]
    run_timed(argv, env, cwd)
    return [run_timed(argv, env, cwd).seconds for _ in range(times)]


# -- Prefect ------------------------------------------------------------------------


def prefect_python(folder: Path) -> tuple[Path, str]:
    """The python of a virtualenv holding Prefect 3 (built on first use); and Prefect's version."""
    python = folder / "bin" / "python"
    found = _prefect_version(python)
    if found is None or not found.startswith("3."):
        print(f"building a virtualenv with {PREFECT_REQUIREMENT} in {folder} (once)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", PREFECT_REQUIREMENT],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        found = _prefect_version(python)
        if found is None:
            raise SystemExit(f"could not install {PREFECT_REQUIREMENT} into {folder}")
    return python, found


def _prefect_version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


class PrefectRuns:
    """Runs Prefect's processes, trying a failed one again (at most ``attempts`` in all).

    On a loaded machine Prefect's ephemeral API server can miss its start-up timeout
    (20 s by default) and the flow fails before it runs; such a run is not timed,
    only counted in ``failures`` so the table can say so.
    """

    def __init__(self, python: Path, *, attempts: int = 3) -> None:
        self.python = python
        self.attempts = attempts
        self.failures: list[str] = []

    def run(self, argv: list[str], env_for: Callable[[], dict[str, str]], cwd: Path) -> Finished:
        """``python argv...``; ``env_for`` gives the environment of each attempt."""
        failure = ProcessFailed(f"{argv} was not run (attempts={self.attempts})")
        for _ in range(self.attempts):
            try:
                return run_timed([str(self.python), *argv], env_for(), cwd)
            except ProcessFailed as failed:
                failure = failed
                self.failures.append(_reason(str(failed.code)))
        raise failure

    def note(self) -> str:
        if not self.failures:
            return ""
        return f"{len(self.failures)} failed run(s) retried, untimed ({self.failures[0][:80]})"


def _reason(output: str) -> str:
    """The exception line of a failed run's output (its last line if there is none)."""
    lines = output.strip().splitlines() or ["failed"]
    errors = [line for line in lines if line.split(":", 1)[0].endswith(("Error", "Exception"))]
    return (errors or lines)[-1]


def prefect_env(home: Path, pycache: Path) -> dict[str, str]:
    """Prefect's defaults (ephemeral API server, SQLite under PREFECT_HOME), telemetry off."""
    return fresh_env(pycache, PREFECT_HOME=str(home), **PREFECT_QUIET_ENV)


def prefect_task_runs(home: Path, flow_run_id: str) -> tuple[int, int]:
    """(task runs recorded, of which completed) for a flow run, read from Prefect's database."""
    with sqlite3.connect(home / "prefect.db") as conn:
        total, completed = conn.execute(
            "SELECT count(*), coalesce(sum(state_type = 'COMPLETED'), 0) FROM task_run WHERE flow_run_id = ?",
            (flow_run_id,),
        ).fetchone()
    return int(total), int(completed)
