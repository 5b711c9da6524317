"""The same MLflow client script against ``keel server`` and ``mlflow server``, both on SQLite.

Each server runs in its own subprocess on 127.0.0.1 with a fresh temporary store.
Against each, the unmodified ``mlflow`` client logs into a new run every round:
``--calls`` per-call ``MlflowClient().log_metric`` requests, then ``--points``
points through ``log_batch`` in batches of 1,000. Rounds repeat ``--repeats``
times per server and medians are reported, because this machine is small and
noisy; rounds alternate between the servers so that load from elsewhere falls on
both alike (an idle MLflow server's background workers can only slow Keel down).

    python benchmarks/tracking_server.py            # the acceptance run (takes minutes)
    python benchmarks/tracking_server.py --calls 200 --points 10000 --repeats 1

Prints a table with the ratio (Keel / MLflow points per second) and writes
``benchmarks/results/tracking_server.json``. Acceptance: Keel at least 3x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BATCH_SIZE = 1000
REQUIRED_RATIO = 3.0
RESULT_FILE = Path(__file__).parent / "results" / "tracking_server.json"
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@dataclass
class Round:
    """One round's wall-clock seconds per phase."""

    per_call_seconds: float
    batch_seconds: float


@dataclass
class Summary:
    server: str
    rounds: list[Round]
    per_call_points_per_second: float
    batch_points_per_second: float
    overall_points_per_second: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(name: str, folder: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``name`` (keel or mlflow) on ``port`` with a fresh store in ``folder``."""
    bin_dir = Path(sys.executable).parent
    if name == "keel":
        command = [str(bin_dir / "keel"), "--workspace", str(folder / "ws"), "server"]
        command += ["--port", str(port)]
    else:
        command = [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        command += ["--default-artifact-root", str(folder / "artifacts")]
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the server
    env = {**os.environ, **QUIET_ENV}
    server = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    wait_until_healthy(server, port, folder / f"{name}.log")
    return server


def wait_until_healthy(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited early; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"server on port {port} did not become healthy; see {log}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and every process it started (its own session)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_round(uri: str, calls: int, points: int, *, verify: bool) -> Round:
    """The client script: per-call log_metric, then log_batch, into a new run."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"bench-{time.time_ns()}")
    run_id = client.create_run(experiment_id).info.run_id
    started = time.perf_counter()
    for step in range(calls):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    per_call = time.perf_counter() - started
    started = time.perf_counter()
    stamp = int(time.time() * 1000)
    for first in range(0, points, BATCH_SIZE):
        batch = [
            Metric("accuracy", step / points, stamp, step)
            for step in range(first, min(first + BATCH_SIZE, points))
        ]
        client.log_batch(run_id, metrics=batch)
    batch_seconds = time.perf_counter() - started
    client.set_terminated(run_id)
    if verify:
        check_arrived(client, run_id, calls, points)
    return Round(per_call, batch_seconds)


def check_arrived(client: Any, run_id: str, calls: int, points: int) -> None:
    """Both servers must have kept every point, or the comparison means nothing."""
    logged = {
        "loss": len(client.get_metric_history(run_id, "loss")),
        "accuracy": len(client.get_metric_history(run_id, "accuracy")),
    }
    if logged != {"loss": calls, "accuracy": points}:
        raise SystemExit(f"points went missing: expected {calls} and {points}, got {logged}")


def measure(calls: int, points: int, repeats: int) -> dict[str, Summary]:
    """Both servers up at once, rounds interleaved, so load from elsewhere hits both alike."""
    rounds: dict[str, list[Round]] = {"mlflow": [], "keel": []}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as scratch:
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for name in rounds:
                folder = Path(scratch) / name
                folder.mkdir()
                port = free_port()
                servers[name] = (start_server(name, folder, port), f"http://127.0.0.1:{port}")
                run_round(servers[name][1], 20, BATCH_SIZE, verify=False)  # warm both sides
            for index in range(repeats):
                for name, (_, uri) in servers.items():
                    rounds[name].append(run_round(uri, calls, points, verify=index == 0))
                    print(f"  {name} round {index + 1}: {rounds[name][-1]}", file=sys.stderr)
        finally:
            for server, _ in servers.values():
                stop_server(server)
    return {name: summarize(name, found, calls, points) for name, found in rounds.items()}


def summarize(name: str, rounds: list[Round], calls: int, points: int) -> Summary:
    per_call = statistics.median(r.per_call_seconds for r in rounds)
    batch = statistics.median(r.batch_seconds for r in rounds)
    overall = statistics.median(r.per_call_seconds + r.batch_seconds for r in rounds)
    return Summary(name, rounds, calls / per_call, points / batch, (calls + points) / overall)


def report(keel: Summary, mlflow: Summary, settings: dict[str, Any]) -> dict[str, Any]:
    ratios = {
        "per_call": keel.per_call_points_per_second / mlflow.per_call_points_per_second,
        "batch": keel.batch_points_per_second / mlflow.batch_points_per_second,
        "overall": keel.overall_points_per_second / mlflow.overall_points_per_second,
    }
    print(f"{'points/s (median)':<22}{'mlflow server':>16}{'keel server':>16}{'ratio':>10}")
    for label, attribute in (
        ("per-call log_metric", "per_call_points_per_second"),
        ("log_batch x1000", "batch_points_per_second"),
        ("whole script", "overall_points_per_second"),
    ):
        ours, theirs = getattr(keel, attribute), getattr(mlflow, attribute)
        print(f"{label:<22}{theirs:>16,.0f}{ours:>16,.0f}{ours / theirs:>9.1f}x")
    passed = min(ratios.values()) >= REQUIRED_RATIO
    print(f"acceptance (every ratio >= {REQUIRED_RATIO:.0f}x): {'PASS' if passed else 'FAIL'}")
    return {
        "benchmark": "tracking_server",
        "command": "python " + " ".join(sys.argv),
        "settings": settings,
        "environment": environment(),
        "keel": asdict(keel),
        "mlflow": asdict(mlflow),
        "ratios": ratios,
        "required_ratio": REQUIRED_RATIO,
        "passed": passed,
    }


def environment() -> dict[str, Any]:
    import mlflow

    import keel

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "mlflow": mlflow.__version__,
        "keel": keel.__version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="per-call log_metric requests")
    parser.add_argument("--points", type=int, default=100_000, help="points sent by log_batch")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per server")
    parser.add_argument("--output", type=Path, default=RESULT_FILE)
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    settings = {"calls": args.calls, "points": args.points, "repeats": args.repeats}
    summaries = measure(args.calls, args.points, args.repeats)
    result = report(summaries["keel"], summaries["mlflow"], settings)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
