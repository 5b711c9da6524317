"""Command-line start-up: ``keel --help`` and ``keel job list`` on an empty workspace.

Each timing is one fresh process started the way a shell starts it (the installed
``keel`` script, no warm interpreter), measured from spawn to exit. The workspace
exists (``keel init``) and has no jobs. A first ``keel job list`` in a folder with
no workspace yet, which creates the database, is shown for information, and so is
MLflow's CLI beside it (``mlflow --help``; ``mlflow experiments search`` on an
existing SQLite database).

    python benchmarks/cli_startup.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import MLFLOW_QUIET_ENV, Result, median, report

TARGET_SECONDS = 0.5
BIN = Path(sys.executable).parent


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def timed(argv: list[str], env: dict[str, str], cwd: Path, times: int) -> list[float]:
    run_once(argv, env, cwd)  # let the OS cache the files, as a user's second call would
    return [run_once(argv, env, cwd) for _ in range(times)]


def first_use(env: dict[str, str], times: int) -> list[float]:
    """``keel job list`` where no workspace exists yet: it creates the database."""
    samples = []
    for _ in range(times):
        with tempfile.TemporaryDirectory(prefix="keel-cli-") as folder:
            samples.append(run_once([str(BIN / "keel"), "job", "list"], env, Path(folder)))
    return samples


def result(name: str, samples: list[float], *, target: bool, note: str = "") -> Result:
    seconds = median(samples)
    return Result(
        name=name,
        value=seconds,
        unit="s",
        samples=samples,
        target=f"<= {TARGET_SECONDS} s" if target else None,
        passed=seconds <= TARGET_SECONDS if target else None,
        note=note,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--mlflow-repeat", type=int, default=5, help="MLflow's CLI takes seconds per call")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KEEL_", "MLFLOW_"))}
    keel = str(BIN / "keel")
    with tempfile.TemporaryDirectory(prefix="keel-cli-") as folder:
        here = Path(folder)
        run_once([keel, "init"], env, here)
        results = [
            result("keel --help", timed([keel, "--help"], env, here, args.repeat), target=True),
            result(
                "keel job list (empty workspace)",
                timed([keel, "job", "list"], env, here, args.repeat),
                target=True,
            ),
            result(
                "keel job list (first use: creates the workspace)",
                first_use(env, args.repeat),
                target=False,
            ),
        ]
        if not args.no_mlflow:
            mlflow = str(BIN / "mlflow")
            mlflow_env = {
                **env,
                **MLFLOW_QUIET_ENV,
                "MLFLOW_TRACKING_URI": f"sqlite:///{here / 'mlflow.db'}",
            }
            run_once([mlflow, "experiments", "search"], mlflow_env, here)  # creates the database
            results += [
                result(
                    "mlflow --help",
                    timed([mlflow, "--help"], mlflow_env, here, args.mlflow_repeat),
                    target=False,
                ),
                result(
                    "mlflow experiments search (existing SQLite database)",
                    timed([mlflow, "experiments", "search"], mlflow_env, here, args.mlflow_repeat),
                    target=False,
                ),
            ]
    report(
        "cli_startup",
        "CLI start-up, a fresh process per call (wall time, spawn to exit)",
        results,
        repeat=args.repeat,
        mlflow_repeat=args.mlflow_repeat,
    )


if __name__ == "__main__":
    main()
