"""Run every benchmark, one after another, each in its own process (``make bench``).

Each script prints its table and writes benchmarks/results/<name>.json; this one
adds a summary of the targets at the end and exits non-zero if a script fails or a
target is missed. Each script also runs on its own, with options (``--help``).

    python benchmarks/run_all.py
    python benchmarks/run_all.py tracking_ingest metric_history
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _harness import BENCHMARKS, RESULTS, figure

# In the order they run. tracking_server compares the HTTP servers and is optional. The
# jobs_* scripts build Prefect 3 a virtualenv of its own on first use (jobs_processes.py).
# The data_copy_* scripts need rclone (apt-get install rclone) and Azurite (make test).
SCRIPTS = [
    "tracking_ingest",
    "tracking_search",
    "metric_history",
    "cli_startup",
    "jobs_python_chain",
    "jobs_command_chain",
    "jobs_reuse",
    "data_copy_large",
    "data_copy_small",
    "data_copy_noop",
    "data_copy_azurite",
    "schedules_latency",
    "schedules_tick",
    "schedules_burst",
    "batch_scoring",
    "online_serving",
    "tracking_server",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these benchmarks")
    args = parser.parse_args()
    chosen = args.names or [name for name in SCRIPTS if (BENCHMARKS / f"{name}.py").exists()]
    unknown = [name for name in chosen if not (BENCHMARKS / f"{name}.py").exists()]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}")
    failed_scripts = []
    for name in chosen:
        print(f"\n=== {name} " + "=" * (70 - len(name)), flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py")], check=False)
        print(f"({name} took {time.perf_counter() - start:.0f} s)", flush=True)
        if done.returncode != 0:
            failed_scripts.append(name)
    missed = summarise(chosen)
    if failed_scripts or missed:
        raise SystemExit(1)


def summarise(names: list[str]) -> list[str]:
    """Print every figure that has a target, and return the ones that missed it."""
    print("\n=== targets " + "=" * 66)
    missed = []
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        for result in json.loads(path.read_text(encoding="utf-8")).get("results", []):
            if not isinstance(result, dict) or result.get("passed") is None:
                continue  # a figure without a target, or a file in another shape
            verdict = "pass" if result["passed"] else "FAIL"
            shown = figure(result["value"], result["unit"])
            print(f"{verdict}  {name}: {result['name']}: {shown} (target {result['target']})")
            if not result["passed"]:
                missed.append(result["name"])
    return missed


if __name__ == "__main__":
    main()
