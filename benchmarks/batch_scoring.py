"""Batch scoring through a batch endpoint beside its floor, and beside ``mlflow models predict``.

The data: 10,000,000 rows of 20 float64 features in one Parquet file (row groups of
1,000,000 rows), generated once into a cache folder. The models: a LogisticRegression
and a 50-tree, depth-8 RandomForestClassifier, trained on 50,000 other rows and saved
with ``mlflow.sklearn.save_model`` (cloudpickle, so the scoring script loads ``model.pkl``).

* **Floor**: one plain Python process (this one, modules imported, model loaded)
  reads the Parquet input with ``pyarrow.parquet.read_table``, converts it to pandas,
  calls ``model.predict``, and writes the predictions as Parquet.
* **Keel**: ``invoke`` + ``run_job`` of a batch endpoint in this process (the same
  modules imported), Parquet in, ``predictions.parquet`` out, 250,000-row
  mini-batches (four to a row group). The whole job is timed: recording it, opening the model through the
  registry (every file hashed), planning, forking the workers, scoring, assembling
  the output, committing it and registering it as a data asset version (with its
  profile). The deployments use the three-line scoring script below, so the output is
  the predictions, as the floor's is. The input's content digest is computed once, by
  an untimed warm-up run, and remembered (by size and mtime) afterwards.
* **No-code**: the MLflow model without a script writes the input rows with their
  predictions (21 columns), beside a floor that writes the same (for scale).
* **Machine scaling**: in each round, two forked processes each predict the forest on
  one 1,000,000-row block, beside one forked process predicting both blocks in turn:
  the speed-up a second worker can have at best on this (shared, 2-core) machine as
  loaded at that moment.
* **MLflow**: ``mlflow models predict -m MODEL -i rows.csv -t csv --env-manager local``
  (its input is CSV or JSON) beside ``keel batch-endpoint invoke --stream`` on the same
  CSV, each as a fresh process timed from spawn to exit, on a subset of the rows
  (1,000,000 by default: MLflow's CLI reads and writes everything in one process, as
  JSON), for the LogisticRegression.

Every measurement is repeated (``--repeat``, interleaved) and reported as the median.

    python benchmarks/batch_scoring.py
    python benchmarks/batch_scoring.py --rows 2000000 --repeat 5 --no-mlflow
    python benchmarks/batch_scoring.py --only-forest --repeat 5     # the 1- and 2-worker figures
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import MLFLOW_QUIET_ENV, Result, median, quiet_mlflow, report

FEATURES = 20
ROW_GROUP = 1_000_000
MINI_BATCH = 250_000
CACHE = Path(os.environ.get("KEEL_BENCH_CACHE", Path(tempfile.gettempdir()) / "keel-bench-batch"))

SCRIPT = """\
import os
import pickle

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)


def run(mini_batch):
    return model.predict(mini_batch)
"""


def columns() -> list[str]:
    return [f"f{i}" for i in range(FEATURES)]


def make_input(rows: int) -> Path:
    """The rows to score, written once per size (in chunks, so memory stays small)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = CACHE / f"input-{rows}.parquet"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    schema = pa.schema([(name, pa.float64()) for name in columns()])
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            size = min(ROW_GROUP, rows - start)
            block = rng.standard_normal((size, FEATURES))
            arrays = {name: block[:, i] for i, name in enumerate(columns())}
            writer.write_table(pa.table(arrays, schema=schema))
    partial.replace(path)
    return path


def make_models(folder: Path) -> dict[str, tuple[Any, Path]]:
    """LogisticRegression and a 50-tree depth-8 forest, saved in the MLflow format."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.standard_normal((50_000, FEATURES)), columns=columns())
    labels = ((frame.f0 + frame.f1 - frame.f2 + rng.normal(0, 0.5, len(frame))) > 0).astype(int)
    built = {
        "lr": LogisticRegression(max_iter=500).fit(frame, labels),
        "rf": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(frame, labels),
    }
    saved = {}
    for name, model in built.items():
        target = folder / f"{name}-model"
        signature = infer_signature(frame.head(100), model.predict(frame.head(100)))
        mlflow.sklearn.save_model(model, target, signature=signature, serialization_format="cloudpickle")
        saved[name] = (model, target)
    return saved


# -- the floor ---------------------------------------------------------------------------------


def floor(model: Any, source: Path, target: Path, *, appended: bool = False) -> float:
    """Read with pyarrow, predict, write the predictions (or the rows with them) as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    table = pq.read_table(source)
    predictions = model.predict(table.to_pandas())
    if appended:
        out = table.append_column("prediction", pa.array(predictions))
    else:
        out = pa.table({"prediction": predictions})
    pq.write_table(out, target)
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def machine_scaling(model: Any, source: Path) -> float:
    """How much faster two forked processes predict two 1,000,000-row blocks (one each) than one
    forked process predicting both in turn: what this machine, as loaded now, offers a second
    worker. Both sides run in fresh children with one BLAS/OpenMP thread, as Keel's workers do."""
    import multiprocessing

    import pyarrow.parquet as pq

    frame = pq.ParquetFile(source).read_row_group(0).to_pandas()
    context = multiprocessing.get_context("fork")

    def timed(blocks_per_child: int, children: int) -> float:
        started = time.perf_counter()
        workers = [
            context.Process(target=_predict_blocks, args=(model, frame, blocks_per_child))
            for _ in range(children)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - started

    return timed(2, 1) / timed(1, 2)


def _predict_blocks(model: Any, frame: Any, blocks: int) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        for _ in range(blocks):
            model.predict(frame)


# -- Keel --------------------------------------------------------------------------------------


class Keel:
    """A workspace with the endpoint ``bench`` and one deployment per measured configuration."""

    def __init__(self, folder: Path, models: dict[str, tuple[Any, Path]]) -> None:
        from keel.endpoints.batch.endpoints import create_deployment, create_endpoint
        from keel.endpoints.batch.specs import load_deployment, load_endpoint
        from keel.workspace import Workspace

        self.folder = folder
        self.workspace = Workspace.open(folder / "ws")
        (folder / "src").mkdir(parents=True, exist_ok=True)
        (folder / "src" / "score.py").write_text(SCRIPT)
        (folder / "endpoint.yml").write_text("name: bench\n")
        create_endpoint(self.workspace, load_endpoint(folder / "endpoint.yml"))
        for name, model, workers, script in (
            ("lr-one", "lr", 1, True),
            ("rf-one", "rf", 1, True),
            ("rf-two", "rf", 2, True),
            ("lr-nocode", "lr", 1, False),
        ):
            lines = [
                f"name: {name}",
                "endpoint_name: bench",
                f"model: {models[model][1]}",
                "settings:",
                f"  max_concurrency_per_instance: {workers}",
                f"  mini_batch_size: {MINI_BATCH}",
                "  output_file_name: predictions.parquet",
                "  retry_settings: {max_retries: 0, timeout: 3600}",
                "  error_threshold: 0",
            ]
            if script:
                lines += ["code_configuration:", "  code: ./src", "  scoring_script: score.py"]
            path = folder / f"{name}.yml"
            path.write_text("\n".join(lines) + "\n")
            create_deployment(self.workspace, load_deployment(path))

    def score(self, deployment: str, source: Path, rows: int) -> float:
        """One invocation, invoke to the end of the job; checks it scored every row."""
        from keel.endpoints.batch.run import invoke, run_job
        from keel.tracking.jobs import get_job

        started = time.perf_counter()
        job = invoke(self.workspace, "bench", input=str(source), deployment=deployment)
        run_job(self.workspace, job.name)
        seconds = time.perf_counter() - started
        done = get_job(self.workspace.store, job.name)
        if done.status.value != "completed" or done.metrics["rows_scored"].last != rows:
            raise SystemExit(f"{deployment}: {done.status.value} ({done.status_reason})")
        return seconds


# -- MLflow ------------------------------------------------------------------------------------


def mlflow_predict(model_dir: Path, csv: Path, out: Path) -> float:
    env = {**os.environ, **MLFLOW_QUIET_ENV}
    argv = [
        str(Path(sys.executable).parent / "mlflow"), "models", "predict", "-m", str(model_dir),
        "-i", str(csv), "-t", "csv", "-o", str(out), "--env-manager", "local",
    ]  # fmt: skip
    return _timed(argv, env)


def keel_cli(workspace: Path, csv: Path) -> float:
    argv = [
        str(Path(sys.executable).parent / "keel"), "--workspace", str(workspace), "batch-endpoint", "invoke",
        "-n", "bench", "-d", "lr-one", "-i", str(csv), "--stream",
    ]  # fmt: skip
    return _timed(argv, dict(os.environ))


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlflow-rows", type=int, default=1_000_000)
    parser.add_argument("--no-mlflow", action="store_true", help="skip mlflow models predict")
    parser.add_argument("--no-nocode", action="store_true", help="skip the no-code (appended rows) figures")
    parser.add_argument(
        "--only-forest", action="store_true", help="only the RandomForest figures (1 and 2 workers)"
    )
    args = parser.parse_args()
    quiet_mlflow()
    source = make_input(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="keel-bench-batch-"))
    try:
        results = run(folder, source, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(
        "batch_scoring_forest" if args.only_forest else "batch_scoring",
        f"Batch scoring of {args.rows:,} rows x {FEATURES} features, Parquet in and out",
        results,
        rows=args.rows,
        features=FEATURES,
        mini_batch_size=MINI_BATCH,
        repeat=args.repeat,
    )
    if any(result.passed is False for result in results):
        raise SystemExit(1)


def run(folder: Path, source: Path, args: argparse.Namespace) -> list[Result]:
    models = make_models(folder)
    keel = Keel(folder, models)
    rows = args.rows
    keel.score("lr-one", source, rows)  # untimed: the input's digest is computed once, then remembered
    plan: dict[str, Callable[[], float]] = {
        "floor, LogisticRegression": lambda: floor(models["lr"][0], source, folder / "floor.parquet"),
        "Keel, LogisticRegression, 1 worker": lambda: keel.score("lr-one", source, rows),
        "floor, RandomForest": lambda: floor(models["rf"][0], source, folder / "floor.parquet"),
        "Keel, RandomForest, 1 worker": lambda: keel.score("rf-one", source, rows),
        "Keel, RandomForest, 2 workers": lambda: keel.score("rf-two", source, rows),
    }
    if args.only_forest:
        plan = {name: measure for name, measure in plan.items() if "RandomForest" in name}
    if not args.no_nocode and not args.only_forest:
        plan["floor writing rows + predictions, LogisticRegression"] = lambda: floor(
            models["lr"][0], source, folder / "floor.parquet", appended=True
        )
        plan["Keel no-code (rows + predictions), LogisticRegression, 1 worker"] = lambda: keel.score(
            "lr-nocode", source, rows
        )
    samples: dict[str, list[float]] = {name: [] for name in plan}
    scaling: list[float] = []
    for round_ in range(args.repeat):
        for name, measure in plan.items():
            samples[name].append(measure())
            print(f"round {round_ + 1}: {name}: {samples[name][-1]:.2f} s", flush=True)
        scaling.append(machine_scaling(models["rf"][0], source))
        print(f"round {round_ + 1}: two plain processes: {scaling[-1]:.2f}x one", flush=True)
    rate = {name: rows / median(values) for name, values in samples.items()}
    results = [Result(name, rate[name], "rows/s", samples=samples[name]) for name in plan]
    _targets(results, rate)
    results.append(
        Result(
            "two plain forked processes predicting the forest, beside one (this machine's scaling)",
            median(scaling),
            "x",
            samples=scaling,
            note="the ceiling for 2 workers while the machine is this busy",
        )
    )
    if not args.no_mlflow and not args.only_forest:
        results += _beside_mlflow(folder, source, models, keel, args)
    return results


def _targets(results: list[Result], rate: dict[str, float]) -> None:
    by_name = {result.name: result for result in results}
    for model in ("LogisticRegression", "RandomForest"):
        if f"floor, {model}" not in rate:
            continue
        keel_name = f"Keel, {model}, 1 worker"
        share = rate[keel_name] / rate[f"floor, {model}"]
        result = by_name[keel_name]
        result.target, result.passed = ">= 70% of the floor", share >= 0.70
        result.note = f"{share:.0%} of the floor"
    two = by_name["Keel, RandomForest, 2 workers"]
    speedup = rate["Keel, RandomForest, 2 workers"] / rate["Keel, RandomForest, 1 worker"]
    alone = by_name["Keel, RandomForest, 1 worker"].samples
    rounds = [single / paired for single, paired in zip(alone, two.samples, strict=True)]
    each = ", ".join(f"{ratio:.2f}x" for ratio in rounds)
    two.target, two.passed = ">= 1.6x one worker", speedup >= 1.6
    two.note = f"{speedup:.2f}x one worker (round by round: {each})"
    nocode = "Keel no-code (rows + predictions), LogisticRegression, 1 worker"
    if nocode in by_name:
        same = rate[nocode] / rate["floor writing rows + predictions, LogisticRegression"]
        by_name[nocode].note = f"{same:.0%} of the floor writing the same"


def _beside_mlflow(
    folder: Path, source: Path, models: dict[str, tuple[Any, Path]], keel: Keel, args: argparse.Namespace
) -> list[Result]:
    import pyarrow.parquet as pq

    subset = min(args.mlflow_rows, args.rows)
    csv = folder / "subset.csv"
    pq.read_table(source).slice(0, subset).to_pandas().to_csv(csv, index=False)
    times: dict[str, list[float]] = {"mlflow": [], "keel": []}
    for _ in range(args.repeat):
        times["mlflow"].append(mlflow_predict(models["lr"][1], csv, folder / "mlflow-out.json"))
        times["keel"].append(keel_cli(keel.workspace.config.root, csv))
    mlflow_rate, keel_rate = subset / median(times["mlflow"]), subset / median(times["keel"])
    ratio = keel_rate / mlflow_rate
    return [
        Result(f"mlflow models predict, LogisticRegression, {subset:,} CSV rows", mlflow_rate, "rows/s",
               samples=times["mlflow"], note="fresh process, spawn to exit"),
        Result("keel batch-endpoint invoke --stream, same CSV, 1 worker", keel_rate, "rows/s",
               samples=times["keel"], note=f"{ratio:.1f}x mlflow models predict"),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
