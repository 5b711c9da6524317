"""Online serving beside ``mlflow models serve``: the same scikit-learn model, the same load generator.

One LogisticRegression (4 numeric features) is saved once as an MLflow model.
MLflow serves that folder with ``mlflow models serve --env-manager local``; Keel
serves it through ``keel up`` and ``keel online-deployment create`` (the model
path in the YAML, so it goes through the registry). wrk sends single-row
``/invocations`` requests in MLflow's ``dataframe_split`` shape to both:

- 16 connections for ``--duration`` seconds: requests/s and p99 (targets: Keel at
  least 10x MLflow's requests/s, p99 at most 25 ms);
- 64 connections, Keel with adaptive batching on (``max_batch_size``): at least
  20x MLflow's requests/s at 64 connections;
- from ``online-deployment create`` (gateway already running) to the first answer,
  beside MLflow's from start-up to its first answer (target: at most 2 s).

Rounds alternate between the two servers (``--repeats``) and medians are reported,
because this machine is small, noisy and shared with wrk itself.

    python benchmarks/online_serving.py                     # the acceptance run (about 5 minutes)
    python benchmarks/online_serving.py --duration 5 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from _harness import MLFLOW_QUIET_ENV, Result, median, report

FEATURES = ["distance", "dep_delay", "hour", "month"]
BODY = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [[0.4, -1.2, 0.3, 1.1]]}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per server and load")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="Keel's max_batch_size in the batching run"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="keel-online-bench-") as scratch:
        run(Path(scratch), args)


def run(folder: Path, args: argparse.Namespace) -> None:
    model = save_model(folder)
    mlflow_port, keel_port = free_port(), free_port()
    mlflow_started = time.perf_counter()
    mlflow = start(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(model),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(mlflow_port),
        ],
        folder / "mlflow.log",
    )
    mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
    wait_ok(mlflow_url, {}, timeout=120)
    mlflow_first = time.perf_counter() - mlflow_started
    keel_up, keel_url, key, keel_first = start_keel(folder, model, keel_port, args.batch_size)
    try:
        results = measure(folder, args, mlflow_url, keel_url, key)
    finally:
        stop(keel_up)
        stop(mlflow)
    figures = summarise(results, keel_first, mlflow_first)
    report(
        "online_serving",
        "Online serving: keel up beside mlflow models serve (same model, wrk, single-row /invocations)",
        figures,
        raw=results,
        load_average=os.getloadavg(),
    )
    if any(result.passed is False for result in figures):
        raise SystemExit(1)


def save_model(folder: Path) -> Path:
    import warnings

    os.environ.update(MLFLOW_QUIET_ENV)
    warnings.filterwarnings("ignore")
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(1000, len(FEATURES))), columns=FEATURES)
    labels = (frame["distance"] + frame["dep_delay"] > 0).astype("int64")
    estimator = LogisticRegression().fit(frame, labels)
    path = folder / "model"
    mlflow.sklearn.save_model(
        estimator, str(path), signature=infer_signature(frame, estimator.predict(frame))
    )
    return path


def start_keel(
    folder: Path, model: Path, port: int, batch_size: int
) -> tuple[subprocess.Popen[bytes], str, str, float]:
    """`keel up`, an endpoint, then the timed `online-deployment create` and first answer."""
    root = folder / "workspace"
    env = {**os.environ, "KEEL_WORKSPACE": str(root)}
    keel = [sys.executable, "-m", "keel.cli.main"]
    up = start([*keel, "up", "--port", str(port)], folder / "keel-up.log", env=env)
    base = f"http://127.0.0.1:{port}"
    wait_ok(f"{base}/v2/health/live", None, timeout=60)
    (folder / "endpoint.yml").write_text("name: bench\n")
    subprocess.run(
        [*keel, "online-endpoint", "create", "-f", str(folder / "endpoint.yml")], env=env, check=True
    )
    settings = "request_settings:\n  max_concurrent_requests_per_instance: 128\n"
    (folder / "single.yml").write_text(f"name: single\nendpoint_name: bench\nmodel: {model}\n{settings}")
    batched = f"{settings}  max_batch_size: {batch_size}\n  max_batch_wait_ms: 1\n"
    (folder / "batched.yml").write_text(f"name: batched\nendpoint_name: bench\nmodel: {model}\n{batched}")
    alone = f"{settings}  max_batch_size: 1\n"
    (folder / "alone.yml").write_text(f"name: alone\nendpoint_name: bench\nmodel: {model}\n{alone}")
    time.sleep(3)  # the fork server has its imports done: what a gateway that has been up a while looks like
    started = time.perf_counter()
    create = [
        *keel,
        "online-deployment",
        "create",
        "-f",
        str(folder / "single.yml"),
        "--all-traffic",
        "--no-wait",
    ]
    subprocess.run(create, env=env, check=True, stdout=subprocess.DEVNULL)
    credentials = subprocess.run(
        [*keel, "online-endpoint", "get-credentials", "-n", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = json.loads(credentials.stdout)["primaryKey"]
    url = f"{base}/endpoints/bench/invocations"
    wait_ok(url, {"Authorization": f"Bearer {key}"}, timeout=60)
    first = time.perf_counter() - started
    for extra in ("batched.yml", "alone.yml"):
        create = [*keel, "online-deployment", "create", "-f", str(folder / extra)]
        subprocess.run(create, env=env, check=True, stdout=subprocess.DEVNULL)
    return up, url, key, first


def measure(
    folder: Path, args: argparse.Namespace, mlflow_url: str, keel_url: str, key: str
) -> dict[str, list[dict[str, float]]]:
    auth = {"Authorization": f"Bearer {key}"}
    names = ("mlflow_16", "keel_16", "keel_alone_16", "mlflow_64", "keel_batched_64")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.repeats):
        runs["mlflow_16"].append(wrk(folder, mlflow_url, {}, 16, args.duration))
        runs["keel_16"].append(
            wrk(folder, keel_url, {**auth, "azureml-model-deployment": "single"}, 16, args.duration)
        )
        alone = {**auth, "azureml-model-deployment": "alone"}
        runs["keel_alone_16"].append(wrk(folder, keel_url, alone, 16, args.duration))
        runs["mlflow_64"].append(wrk(folder, mlflow_url, {}, 64, args.duration))
        batched = {**auth, "azureml-model-deployment": "batched"}
        runs["keel_batched_64"].append(wrk(folder, keel_url, batched, 64, args.duration))
    return runs


def wrk(folder: Path, url: str, headers: dict[str, str], connections: int, duration: int) -> dict[str, float]:
    script = folder / "post.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [==[{BODY}]==]",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency(output, "50%"),
        "p99_ms": latency(output, "99%"),
        "errors": float(errors.group(1)) if errors else 0.0,
        "load_average": os.getloadavg()[0],
    }


def latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{re.escape(percentile)}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def summarise(
    runs: dict[str, list[dict[str, float]]], keel_first: float, mlflow_first: float
) -> list[Result]:
    def rate(name: str) -> float:
        return median([run["requests_per_second"] for run in runs[name]])

    def p99(name: str) -> float:
        return median([run["p99_ms"] for run in runs[name]])

    single_ratio = rate("keel_16") / rate("mlflow_16")
    batch_ratio = rate("keel_batched_64") / rate("mlflow_64")
    errors = sum(
        run["errors"] for name in ("keel_16", "keel_alone_16", "keel_batched_64") for run in runs[name]
    )
    return [
        Result(
            "mlflow models serve, 16 connections",
            rate("mlflow_16"),
            "req/s",
            note=f"p99 {p99('mlflow_16'):.1f} ms",
        ),
        Result("keel up, 16 connections", rate("keel_16"), "req/s", note=f"p99 {p99('keel_16'):.1f} ms"),
        Result(
            "keel / mlflow, 16 connections", single_ratio, "x", target=">= 10x", passed=single_ratio >= 10
        ),
        Result(
            "keel p99, 16 connections", p99("keel_16"), "ms", target="<= 25 ms", passed=p99("keel_16") <= 25
        ),
        Result(
            "keel up, max_batch_size 1, 16 connections",
            rate("keel_alone_16"),
            "req/s",
            note=f"p99 {p99('keel_alone_16'):.1f} ms, {rate('keel_alone_16') / rate('mlflow_16'):.1f}x",
        ),
        Result(
            "mlflow models serve, 64 connections",
            rate("mlflow_64"),
            "req/s",
            note=f"p99 {p99('mlflow_64'):.1f} ms",
        ),
        Result(
            "keel up batching, 64 connections",
            rate("keel_batched_64"),
            "req/s",
            note=f"p99 {p99('keel_batched_64'):.1f} ms",
        ),
        Result(
            "keel batching / mlflow, 64 connections",
            batch_ratio,
            "x",
            target=">= 20x",
            passed=batch_ratio >= 20,
        ),
        Result(
            "keel: deployment create to first answer",
            keel_first,
            "s",
            target="<= 2 s",
            passed=keel_first <= 2,
        ),
        Result("mlflow: start to first answer", mlflow_first, "s"),
        Result("keel failed requests", errors, "requests", target="0", passed=errors == 0),
    ]


def start(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115 (kept open for the process's life)
    environment = {**(env or os.environ), **MLFLOW_QUIET_ENV}
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, env=environment, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ok(url: str, headers: dict[str, str] | None, timeout: float) -> None:
    """Poll until ``url`` answers 200 (a POST of the benchmark's body when ``headers`` is given)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if headers is None:
            request = urllib.request.Request(url)
        else:
            request = urllib.request.Request(
                url, data=BODY.encode(), headers={"Content-Type": "application/json", **headers}
            )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
