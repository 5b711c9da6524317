"""Reading a long metric history for a chart: 1,000,000 points downsampled to at most 1,000.

The history is written with the metric writer's ``write_metrics`` (the SDK's own
path, minus the queue) to save time; the timed call is the public
``keel.get_metric_history(job, key, max_points=1000)``, which picks points spread
evenly over the steps and keeps the first, last, minimum and maximum. Reading the
whole history is shown beside it for scale. MLflow has no peer here: its client's
``get_metric_history`` always returns every point.

    python benchmarks/metric_history.py
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import Result, median, repeat, report

POINTS = 1_000_000
MAX_POINTS = 1_000
TARGET_MS = 200.0
BATCH = 50_000


def build(root: Path, points: int) -> tuple[str, float]:
    """A job with one ``loss`` history of ``points`` points; returns its name and build time."""
    import keel
    from keel.tracking.metrics import write_metrics

    store = keel.set_workspace(root).store
    with keel.start_run(experiment="history") as run:
        pass
    start = time.perf_counter()
    stamp = int(time.time() * 1000)
    for first in range(0, points, BATCH):
        write_metrics(
            store,
            [
                (run.job_id, "loss", math.exp(-step / points) + 0.01 * math.sin(step), stamp, step)
                for step in range(first, min(first + BATCH, points))
            ],
        )
    return run.name, time.perf_counter() - start


def read_history(job: str, points: int, max_points: int | None) -> Callable[[], float]:
    import keel

    def measure() -> float:
        start = time.perf_counter()
        history = keel.get_metric_history(job, "loss", max_points=max_points)
        elapsed = time.perf_counter() - start
        steps = [point.step for point in history]
        expected = points if max_points is None else max_points
        if not 0 < len(history) <= expected or steps != sorted(steps):
            raise SystemExit(f"got {len(history)} points, expected at most {expected} in order")
        if steps[0] != 0 or steps[-1] != points - 1:
            raise SystemExit("the first and last points must be kept")
        return elapsed

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--full-repeat", type=int, default=3, help="reads of the whole history")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-history-") as folder:
        job, build_seconds = build(Path(folder) / ".keel", args.points)
        downsampled = read_history(job, args.points, MAX_POINTS)
        downsampled()  # warm the caches once, as a long-lived process would have
        samples = [s * 1000 for s in repeat(downsampled, args.repeat)]
        results = [
            Result(
                name=f"keel.get_metric_history(max_points={MAX_POINTS:,})",
                value=median(samples),
                unit="ms",
                samples=samples,
                target=f"<= {TARGET_MS:.0f} ms",
                passed=median(samples) <= TARGET_MS,
                note=f"{args.points:,}-point history",
            )
        ]
        whole = [s * 1000 for s in repeat(read_history(job, args.points, None), args.full_repeat)]
        results.append(
            Result(
                name="keel.get_metric_history() (every point, for scale)",
                value=median(whole),
                unit="ms",
                samples=whole,
                note=f"{args.points:,} points returned",
            )
        )
    report(
        "metric_history",
        f"Metric history of {args.points:,} points, downsampled to <= {MAX_POINTS:,}",
        results,
        points=args.points,
        repeat=args.repeat,
        build_seconds=build_seconds,
    )


if __name__ == "__main__":
    main()
