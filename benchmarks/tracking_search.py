"""Searching jobs: Keel beside MLflow 3, both on SQLite, over the same 10,000 runs.

Every job has 10 params and 10 metrics of 5 steps each. Param ``p0`` takes one of
ten values, so the filter ``params.p0 = 'v3'`` keeps about 1,000 jobs; they are
ordered by metric ``m0``. Keel orders by the metric's minimum
(``min(metrics.m0) ASC``, read from the per-key summary row); MLflow can only order
by a metric's latest value (``metrics.m0 ASC``). Both return the same number of
results (``max_results``) and the figure is the median wall time of one call.

Keel is built through its tracking operations (create_job, log_params and the
metric writer's write_metrics); MLflow through ``MlflowClient`` (create_run, then
one log_batch per run with its params and metrics).

    python benchmarks/tracking_search.py
    python benchmarks/tracking_search.py --jobs 2000 --no-mlflow    # a quick look
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import Result, median, quiet_mlflow, repeat, report

PARAMS = 10
METRICS = 10
STEPS = 5
CHOICES = 10  # distinct values of p0
TARGET_MS = 100.0
KEEL_FILTER = "params.p0 = 'v3'"
KEEL_ORDER = "min(metrics.m0) ASC"
MLFLOW_FILTER = "params.p0 = 'v3'"
MLFLOW_ORDER = "metrics.m0 ASC"


def dataset(jobs: int, seed: int = 7) -> list[tuple[dict[str, str], list[tuple[str, float, int]]]]:
    """The same params and metric points for both systems: (params, [(key, value, step)])."""
    rng = random.Random(seed)
    runs = []
    for _ in range(jobs):
        params = {"p0": f"v{rng.randrange(CHOICES)}"}
        params.update({f"p{k}": f"{rng.random():.6f}" for k in range(1, PARAMS)})
        points = [(f"m{k}", rng.random(), step) for k in range(METRICS) for step in range(STEPS)]
        runs.append((params, points))
    return runs


# -- Keel ---------------------------------------------------------------------------


def build_keel(root: Path, runs: list[Any]) -> float:
    """Load the data set into a fresh workspace; returns the seconds it took."""
    import keel
    from keel.tracking import jobs as job_ops
    from keel.tracking.entities import JobStatus
    from keel.tracking.experiments import get_or_create_experiment
    from keel.tracking.metrics import write_metrics

    store = keel.set_workspace(root).store
    start = time.perf_counter()
    experiment = get_or_create_experiment(store, "search")
    pending = []
    stamp = int(time.time() * 1000)
    for params, points in runs:
        job = job_ops.create_job(store, experiment, status=JobStatus.COMPLETED)
        job_ops.log_params(store, job.id, params)
        pending += [(job.id, key, value, stamp + step, step) for key, value, step in points]
        if len(pending) >= 50_000:
            write_metrics(store, pending)
            pending = []
    write_metrics(store, pending)
    return time.perf_counter() - start


def keel_search(max_results: int, expected: int) -> Callable[[], float]:
    import keel

    def measure() -> float:
        start = time.perf_counter()
        found = keel.search_jobs("search", filter=KEEL_FILTER, order_by=KEEL_ORDER, max_results=max_results)
        elapsed = time.perf_counter() - start
        minima = [job.metrics["m0"].min for job in found]
        if len(found) != expected or minima != sorted(minima):
            raise SystemExit("Keel returned the wrong jobs")
        return elapsed

    return measure


# -- MLflow -------------------------------------------------------------------------


def build_mlflow(folder: Path, runs: list[Any]) -> tuple[Any, str, float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment_id = client.create_experiment("search")
    start = time.perf_counter()
    stamp = int(time.time() * 1000)
    for params, points in runs:
        run_id = client.create_run(experiment_id).info.run_id
        client.log_batch(
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            metrics=[Metric(key, value, stamp + step, step) for key, value, step in points],
        )
    return client, experiment_id, time.perf_counter() - start


def mlflow_search(client: Any, experiment_id: str, max_results: int, expected: int) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        found = client.search_runs(
            [experiment_id],
            filter_string=MLFLOW_FILTER,
            order_by=[MLFLOW_ORDER],
            max_results=max_results,
        )
        elapsed = time.perf_counter() - start
        latest = [run.data.metrics["m0"] for run in found]
        if len(found) != expected or latest != sorted(latest):
            raise SystemExit("MLflow returned the wrong runs")
        return elapsed

    return measure


# -- the table ----------------------------------------------------------------------


def latency(name: str, samples: list[float], *, target: bool, note: str = "") -> Result:
    milliseconds = [s * 1000 for s in samples]
    p50 = median(milliseconds)
    return Result(
        name=name,
        value=p50,
        unit="ms",
        samples=milliseconds,
        target=f"p50 <= {TARGET_MS:.0f} ms" if target else None,
        passed=p50 <= TARGET_MS if target else None,
        note=note,
    )


def timed_queries(measure: Callable[[], float], repeats: int) -> list[float]:
    measure()  # warm the caches once, as a long-lived process would have
    return repeat(measure, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=21, help="timed calls per query")
    parser.add_argument("--max-results", type=int, nargs="+", default=[100, 1000], help="same for both")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    runs = dataset(args.jobs)
    matching = sum(1 for params, _ in runs if params["p0"] == "v3")
    results: list[Result] = []
    builds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="keel-search-") as folder:
        builds["keel"] = build_keel(Path(folder) / ".keel", runs)
        keel_p50: dict[int, float] = {}
        for limit in args.max_results:
            samples = timed_queries(keel_search(limit, min(limit, matching)), args.repeat)
            result = latency(
                f"Keel, keel.search_jobs, max_results={limit}",
                samples,
                target=limit == min(args.max_results),
                note=f"{KEEL_FILTER}, order by {KEEL_ORDER}",
            )
            keel_p50[limit] = result.value
            results.append(result)
        if not args.no_mlflow:
            quiet_mlflow()
            client, experiment_id, builds["mlflow"] = build_mlflow(Path(folder), runs)
            for limit in args.max_results:
                samples = timed_queries(
                    mlflow_search(client, experiment_id, limit, min(limit, matching)), args.repeat
                )
                p50 = median(samples) * 1000
                results.append(
                    latency(
                        f"MLflow, MlflowClient.search_runs, max_results={limit}",
                        samples,
                        target=False,
                        note=f"{MLFLOW_FILTER}, order by {MLFLOW_ORDER} (latest value only); "
                        f"{p50 / keel_p50[limit]:.1f}x Keel's time",
                    )
                )
    report(
        "tracking_search",
        f"Search over {args.jobs:,} jobs ({PARAMS} params, {METRICS} metrics x {STEPS} steps)",
        results,
        jobs=args.jobs,
        repeat=args.repeat,
        build_seconds=builds,
    )


if __name__ == "__main__":
    main()
