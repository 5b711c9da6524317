"""Metric ingest through the SDK: Keel beside MLflow 3 on SQLite, and Keel on PostgreSQL.

One process logs 100 keys x 1,000 steps = 100,000 points into a fresh run, timed
from the first log call until ``end_run`` returns, that is until every point is
committed. Keel is measured with one ``keel.log_metric`` call per point and with
``keel.log_metrics(dict, step=)`` per step. MLflow (SQLite tracking URI, no server)
is measured with ``mlflow.log_metric`` per point, synchronous and asynchronous,
on fewer points because it manages a few hundred a second (its rate is
extrapolated, and the table says so), and with ``MlflowClient().log_batch`` in
batches of 1,000 on all 100,000.

    python benchmarks/tracking_ingest.py                 # everything
    python benchmarks/tracking_ingest.py --no-mlflow --no-postgres --repeat 9
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import (
    Result,
    median,
    postgres_reachable,
    quiet_mlflow,
    rate_at_median,
    repeat,
    report,
    scratch_postgres,
)

KEYS = 100
STEPS = 1_000
POINTS = KEYS * STEPS
TARGET_POINTS_PER_SECOND = 200_000
KEY_NAMES = [f"metric_{k:03d}" for k in range(KEYS)]


def _loss(step: int, key: int) -> float:
    return 1.0 / (step + 1) + key


# -- Keel ---------------------------------------------------------------------------


def keel_per_call() -> None:
    import keel

    for step in range(STEPS):
        for key, name in enumerate(KEY_NAMES):
            keel.log_metric(name, _loss(step, key), step=step)


def keel_per_step() -> None:
    import keel

    for step in range(STEPS):
        keel.log_metrics({name: _loss(step, k) for k, name in enumerate(KEY_NAMES)}, step=step)


def time_keel(log: Callable[[], None], database_url: str | None = None) -> float:
    """Seconds from the first point until end_run returns, in a fresh workspace."""
    import keel

    with tempfile.TemporaryDirectory(prefix="keel-ingest-") as folder:
        if database_url is not None:
            os.environ["KEEL_DATABASE_URL"] = database_url
        try:
            workspace = keel.set_workspace(Path(folder) / ".keel")
            run = keel.start_run(experiment="ingest")
            start = time.perf_counter()
            log()
            keel.end_run()
            elapsed = time.perf_counter() - start
            logged = sum(s.count for s in keel.get_job(run.name).metrics.values())
            workspace.close()
        finally:
            os.environ.pop("KEEL_DATABASE_URL", None)
    if logged != POINTS:
        raise SystemExit(f"Keel stored {logged} points, expected {POINTS}")
    return elapsed


def time_keel_postgres(log: Callable[[], None]) -> float:
    with scratch_postgres("keel_bench_ingest") as url:
        return time_keel(log, url)


# -- MLflow -------------------------------------------------------------------------


def time_mlflow_fluent(points: int, *, synchronous: bool) -> float:
    """``mlflow.log_metric`` per point (``points`` of them), until end_run returns."""
    import mlflow

    steps = points // KEYS
    with tempfile.TemporaryDirectory(prefix="mlflow-ingest-") as folder:
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
        mlflow.set_experiment("ingest")
        mlflow.start_run()
        start = time.perf_counter()
        for step in range(steps):
            for key, name in enumerate(KEY_NAMES):
                mlflow.log_metric(name, _loss(step, key), step=step, synchronous=synchronous)
        mlflow.end_run()  # waits for asynchronous logging to finish
        return time.perf_counter() - start


def time_mlflow_log_batch(points: int = POINTS, batch: int = 1_000) -> float:
    """``MlflowClient().log_batch`` with ``batch`` metrics per call, until the last returns."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    with tempfile.TemporaryDirectory(prefix="mlflow-ingest-") as folder:
        client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
        run_id = client.create_run(client.create_experiment("ingest")).info.run_id
        start = time.perf_counter()
        pending: list[Metric] = []
        for step in range(points // KEYS):
            stamp = int(time.time() * 1000)
            for key, name in enumerate(KEY_NAMES):
                pending.append(Metric(name, _loss(step, key), stamp, step))
                if len(pending) == batch:
                    client.log_batch(run_id, metrics=pending)
                    pending = []
        if pending:
            client.log_batch(run_id, metrics=pending)
        elapsed = time.perf_counter() - start
        client.set_terminated(run_id)
    return elapsed


def warm_up_mlflow() -> None:
    """Import MLflow and create one database so neither lands inside a timing."""
    import mlflow

    quiet_mlflow()
    time_mlflow_fluent(KEYS, synchronous=True)
    mlflow.set_tracking_uri(None)


# -- the table ----------------------------------------------------------------------


def rate_result(name: str, samples: list[float], points: int, *, target: bool, note: str = "") -> Result:
    rate = rate_at_median(points, samples)
    return Result(
        name=name,
        value=rate,
        unit="points/s",
        samples=[points / s for s in samples],
        target=f">= {TARGET_POINTS_PER_SECOND:,}" if target else None,
        passed=rate >= TARGET_POINTS_PER_SECOND if target else None,
        note=note or f"{points:,} points in {median(samples):.2f} s",
    )


def measure_keel(repeats: int, postgres: bool) -> list[Result]:
    results = [
        rate_result(
            "Keel SQLite, keel.log_metric per point",
            repeat(lambda: time_keel(keel_per_call), repeats),
            POINTS,
            target=True,
        ),
        rate_result(
            "Keel SQLite, keel.log_metrics per step",
            repeat(lambda: time_keel(keel_per_step), repeats),
            POINTS,
            target=True,
        ),
    ]
    if postgres:
        results += [
            rate_result(
                "Keel PostgreSQL, keel.log_metric per point",
                repeat(lambda: time_keel_postgres(keel_per_call), repeats),
                POINTS,
                target=False,
            ),
            rate_result(
                "Keel PostgreSQL, keel.log_metrics per step",
                repeat(lambda: time_keel_postgres(keel_per_step), repeats),
                POINTS,
                target=False,
            ),
        ]
    return results


def measure_mlflow(repeats: int, fluent_points: int, keel: list[Result]) -> list[Result]:
    """MLflow's three ways to log, each compared with Keel's matching SQLite figure."""
    warm_up_mlflow()
    per_point, per_step = keel[0].value, keel[1].value
    results = []
    for synchronous in (True, False):
        samples = repeat(lambda s=synchronous: time_mlflow_fluent(fluent_points, synchronous=s), repeats)
        rate = rate_at_median(fluent_points, samples)
        results.append(
            rate_result(
                f"MLflow SQLite, mlflow.log_metric per point (synchronous={synchronous})",
                samples,
                fluent_points,
                target=False,
                note=f"{fluent_points:,} points in {median(samples):.1f} s; 100,000 would take "
                f"~{POINTS / rate / 60:.0f} min (extrapolated); Keel per point "
                f"{per_point / rate:,.0f}x faster",
            )
        )
    samples = repeat(time_mlflow_log_batch, repeats)
    batch = rate_result("MLflow SQLite, MlflowClient.log_batch x 1,000", samples, POINTS, target=False)
    batch.note += f"; Keel log_metrics per step {per_step / batch.value:,.0f}x faster"
    return [*results, batch]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each Keel timing")
    parser.add_argument("--mlflow-repeat", type=int, default=3, help="repetitions of each MLflow timing")
    parser.add_argument(
        "--mlflow-points", type=int, default=1_000, help="points for mlflow.log_metric per call"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="measure Keel only")
    parser.add_argument("--no-postgres", action="store_true", help="skip Keel on PostgreSQL")
    args = parser.parse_args()

    postgres = not args.no_postgres and postgres_reachable()
    if not args.no_postgres and not postgres:
        print("PostgreSQL is not reachable: its rows are skipped")
    results = measure_keel(args.repeat, postgres)
    if not args.no_mlflow:
        results += measure_mlflow(args.mlflow_repeat, args.mlflow_points, results)
    report(
        "tracking_ingest",
        f"Metric ingest, {POINTS:,} points ({KEYS} keys x {STEPS:,} steps), timed until durable",
        results,
        points=POINTS,
        repeat=args.repeat,
        mlflow_repeat=args.mlflow_repeat,
        mlflow_fluent_points=args.mlflow_points,
    )


if __name__ == "__main__":
    main()
