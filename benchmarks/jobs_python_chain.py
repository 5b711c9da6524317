"""A 50-step chain of trivial Python steps as a fresh process: Keel beside Prefect 3.

Keel: a script defines ``@keel.component def add_one(x: int) -> int`` and a
``@keel.pipeline`` chaining 50 of them (each step takes the previous step's
output), calls ``keel.submit(...)`` in a fresh workspace (``KEEL_WORKSPACE`` in a
scratch folder), then checks that the pipeline job has 50 child jobs, all
completed (none reused), and that the last output is 50. Prefect: the same chain
as a ``@flow`` of 50 ``@task`` calls, in its default ephemeral mode (no server
started beforehand: the flow starts its temporary API server), ``PREFECT_HOME``
in a scratch folder.

Each script is run as ``python script.py`` from its project folder, a fresh
process per repetition, timed from spawn to exit (see jobs_processes.py for the
environment). The per-step cycle is measured inside: the step function appends
``time.perf_counter()`` at each call and does nothing else, so the median interval
between consecutive calls is what the orchestrator spends per step.

    python benchmarks/jobs_python_chain.py
    python benchmarks/jobs_python_chain.py --no-prefect --repeat 21
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _harness import Result, median, report
from jobs_processes import (
    BIN,
    BYTECODE,
    DEFAULT_PREFECT_VENV,
    PREFECT_QUIET_ENV,
    PREFECT_REQUIREMENT,
    Finished,
    PrefectRuns,
    fresh_env,
    median_gap_ms,
    prefect_env,
    prefect_python,
    prefect_task_runs,
    run_timed,
)

STEPS = 50
TARGET_SECONDS = 1.0
TARGET_CYCLE_MS = 1.0

# Both scripts print one JSON line: "top" (time.time() at their first line) and
# perf_counter stamps in seconds since then ("calls" holds one per step).
KEEL_SCRIPT = '''\
"""{steps} trivial in-process steps run by Keel (written by benchmarks/jobs_python_chain.py)."""

import json
import sys
import time

TOP, ORIGIN = time.time(), time.perf_counter()

import keel

CALLS: list[float] = []


@keel.component
def add_one(x: int) -> int:
    CALLS.append(time.perf_counter() - ORIGIN)
    return x + 1


@keel.pipeline
def chain(start: int = 0):
    step = add_one(x=start)
    for _ in range({steps} - 1):
        step = add_one(x=step.outputs.output)
    return {{"last": step.outputs.output}}


def run(start: int) -> dict:
    """Submit the chain; check every step is a completed job (not reused) and the result."""
    from keel.jobs.records import stored_outputs
    from keel.tracking.sdk import current_workspace
    from keel.tracking.search import search_jobs

    CALLS.clear()
    submitting = time.perf_counter() - ORIGIN
    job = keel.submit(chain(start=start))
    submitted = time.perf_counter() - ORIGIN
    store = current_workspace().store
    steps = search_jobs(store, parent_id=job.id, max_results=1000).jobs
    completed = [s for s in steps if s.status == keel.JobStatus.COMPLETED and s.reused_from is None]
    return {{
        "status": job.status.value,
        "steps": len(steps),
        "completed": len(completed),
        "last": stored_outputs(store, job.id)["last"].value - start,
        "calls": list(CALLS),
        "submitting": submitting,
        "submitted": submitted,
        "checked": time.perf_counter() - ORIGIN,
    }}


first = run(0)
warm = run(1000) if "warm" in sys.argv[1:] else None
print(json.dumps({{"top": TOP, **first, "warm": warm}}), flush=True)
'''

PREFECT_SCRIPT = '''\
"""{steps} trivial tasks in a Prefect flow (written by benchmarks/jobs_python_chain.py)."""

import json
import time

TOP, ORIGIN = time.time(), time.perf_counter()

from prefect import flow, task
from prefect.runtime import flow_run

CALLS: list[float] = []


@task
def add_one(x: int) -> int:
    CALLS.append(time.perf_counter() - ORIGIN)
    return x + 1


@flow
def chain(start: int = 0) -> dict:
    value = start
    for _ in range({steps}):
        value = add_one(value)
    return {{"last": value - start, "flow_run": str(flow_run.id)}}


submitting = time.perf_counter() - ORIGIN
result = chain()
submitted = time.perf_counter() - ORIGIN
print(json.dumps({{"top": TOP, **result, "calls": CALLS, "submitting": submitting,
                  "submitted": submitted, "checked": submitted}}), flush=True)
'''


# -- one run of each ----------------------------------------------------------------


class Chain:
    """The scratch folder of one benchmark run: the two projects, workspaces, bytecode cache."""

    def __init__(self, root: Path, prefect: Path | None) -> None:
        self.root = root
        self.pycache = root / "pycache"
        self.prefect = None if prefect is None else PrefectRuns(prefect)
        self.runs = 0
        for name, text in (("keel", KEEL_SCRIPT), ("prefect", PREFECT_SCRIPT)):
            (root / name).mkdir()
            (root / name / f"chain_{name}.py").write_text(text.format(steps=STEPS), encoding="utf-8")

    def keel(self, *, warm: bool = False, bytecode: bool = True) -> Finished:
        """One fresh process, in a fresh workspace; refuses a run that did not record every step."""
        self.runs += 1
        workspace = self.root / f"workspace-{self.runs}"
        env = fresh_env(self.pycache if bytecode else None, KEEL_WORKSPACE=str(workspace))
        argv = [str(BIN / "python"), "chain_keel.py", *(["warm"] if warm else [])]
        finished = run_timed(argv, env, self.root / "keel")
        for run in (finished.report, finished.report["warm"]):
            if run is not None:
                _check_keel(run)
        shutil.rmtree(workspace)
        return finished

    def prefect_run(self, home: Path | None = None) -> Finished:
        """One fresh process with ``PREFECT_HOME=home`` (a fresh one if None, removed after);
        notes how many task runs Prefect recorded."""
        if self.prefect is None:
            raise SystemExit("Prefect is switched off (--no-prefect)")
        homes: list[Path] = []

        def env() -> dict[str, str]:
            self.runs += 1
            homes.append(home or self.root / f"prefect-home-{self.runs}")
            return prefect_env(homes[-1], self.pycache)

        finished = self.prefect.run(["chain_prefect.py"], env, self.root / "prefect")
        if finished.report.get("last") != STEPS or len(finished.report["calls"]) != STEPS:
            raise SystemExit(f"the Prefect flow did not run {STEPS} tasks: {finished.report}")
        finished.report["recorded"] = prefect_task_runs(homes[-1], finished.report["flow_run"])
        if home is None:
            for folder in homes:
                shutil.rmtree(folder, ignore_errors=True)
        return finished


def _check_keel(run: dict[str, Any]) -> None:
    expected = {"status": "completed", "steps": STEPS, "completed": STEPS, "last": STEPS}
    found = {key: run[key] for key in expected}
    if found != expected or len(run["calls"]) != STEPS:
        raise SystemExit(f"Keel's chain did not record {STEPS} completed steps: {found}")


# -- where the time goes --------------------------------------------------------------


def phases(runs: list[Finished]) -> dict[str, float]:
    """Median seconds of each phase of the process, from the stamps its script printed."""

    def phase(run: Finished) -> dict[str, float]:
        r = run.report
        calls = r["calls"]
        return {
            "interpreter start (spawn to the script's first line)": r["top"] - run.spawned_at,
            "imports and definitions": r["submitting"],
            "submit until the first step runs": calls[0] - r["submitting"],
            f"the {STEPS} steps (first call to last)": calls[-1] - calls[0],
            "after the last step until submit returns": r["submitted"] - calls[-1],
            "checking the records": r["checked"] - r["submitted"],
            "exit (after the script's last line)": run.seconds - (r["top"] - run.spawned_at) - r["checked"],
        }

    measured = [phase(run) for run in runs]
    return {name: median([m[name] for m in measured]) for name in measured[0]}


def print_phases(title: str, found: dict[str, float]) -> None:
    print(f"\n{title} (median seconds)")
    for name, seconds in found.items():
        print(f"  {seconds:7.3f}  {name}")


# -- the table ----------------------------------------------------------------------


def seconds_result(name: str, runs: list[Finished], *, target: bool, note: str = "") -> Result:
    samples = [run.seconds for run in runs]
    value = median(samples)
    return Result(
        name=name,
        value=value,
        unit="s",
        samples=samples,
        target=f"<= {TARGET_SECONDS:g} s" if target else None,
        passed=value <= TARGET_SECONDS if target else None,
        note=note,
    )


def cycle_result(name: str, runs: list[dict[str, Any]], *, target: bool, note: str = "") -> Result:
    samples = [median_gap_ms(run["calls"]) for run in runs]
    value = median(samples)
    return Result(
        name=name,
        value=value,
        unit="ms",
        samples=samples,
        target=f"<= {TARGET_CYCLE_MS:g} ms" if target else None,
        passed=value <= TARGET_CYCLE_MS if target else None,
        note=note,
    )


def measure_keel(chain: Chain, repeats: int) -> tuple[list[Result], dict[str, float]]:
    chain.keel()  # untimed: fills the bytecode cache and the OS's file cache
    runs = [chain.keel() for _ in range(repeats)]
    warm = [chain.keel(warm=True).report["warm"] for _ in range(max(3, repeats // 2))]
    cold = [chain.keel(bytecode=False) for _ in range(max(3, repeats // 2))]
    recorded = f"{STEPS}/{STEPS} steps recorded as completed jobs in every run"
    results = [
        seconds_result(f"Keel: {STEPS}-step chain, whole process", runs, target=True, note=recorded),
        cycle_result("Keel: per-step cycle (first submit)", [r.report for r in runs], target=True),
        cycle_result("Keel: per-step cycle, second submit in the same process", warm, target=False),
        seconds_result(
            "Keel: whole process, PYTHONDONTWRITEBYTECODE=1",
            cold,
            target=False,
            note="every Keel module compiled at start",
        ),
    ]
    return results, phases(runs)


def measure_prefect(chain: Chain, repeats: int) -> tuple[list[Result], dict[str, float]]:
    existing = chain.root / "prefect-home-existing"
    chain.prefect_run(existing)  # untimed: bytecode cache, and the database for the "existing" row
    fresh = [chain.prefect_run() for _ in range(repeats)]
    again = [chain.prefect_run(existing) for _ in range(repeats)]

    def recorded(runs: list[Finished]) -> str:
        counts = sorted(run.report["recorded"][1] for run in runs)
        return (
            f"completed task runs in its database after exit: median {median(counts):g}/{STEPS} "
            f"(min {counts[0]}, max {counts[-1]})"
        )

    failures = chain.prefect.note() if chain.prefect is not None else ""

    results = [
        seconds_result(
            f"Prefect 3: {STEPS}-task flow, whole process, fresh PREFECT_HOME",
            fresh,
            target=False,
            note=recorded(fresh),
        ),
        seconds_result(
            "Prefect 3: whole process, PREFECT_HOME with its database",
            again,
            target=False,
            note=recorded(again),
        ),
        cycle_result(
            "Prefect 3: per-task cycle inside the flow",
            [run.report for run in fresh + again],
            target=False,
            note=failures,
        ),
    ]
    return results, phases(fresh + again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="Keel processes (each under a second)")
    parser.add_argument("--prefect-repeat", type=int, default=5, help="Prefect runs per row (10-15 s each)")
    parser.add_argument("--no-prefect", action="store_true")
    parser.add_argument(
        "--prefect-venv",
        type=Path,
        default=DEFAULT_PREFECT_VENV,
        help="a virtualenv holding Prefect 3 (built there with pip if missing)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    prefect, prefect_version = (None, None) if args.no_prefect else prefect_python(args.prefect_venv)
    found: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="keel-bench-chain-") as folder:
        chain = Chain(Path(folder), prefect)
        results, found["keel"] = measure_keel(chain, args.repeat)
        if prefect is not None:
            more, found["prefect"] = measure_prefect(chain, args.prefect_repeat)
            results += more
    report(
        "jobs_python_chain",
        f"A {STEPS}-step chain of trivial Python steps, a fresh process per run (wall time, spawn to exit)",
        results,
        steps=STEPS,
        repeat=args.repeat,
        prefect_repeat=None if prefect is None else args.prefect_repeat,
        prefect={
            "version": prefect_version,
            "requirement": PREFECT_REQUIREMENT,
            "virtualenv": None if prefect is None else str(args.prefect_venv),
            "environment": {"PREFECT_HOME": "<scratch folder>", **PREFECT_QUIET_ENV},
            "mode": "default ephemeral API server, started by the flow; SQLite under PREFECT_HOME",
        },
        bytecode=BYTECODE,
        phases=found,
        load_average={"start": load_before, "end": os.getloadavg()},
    )
    for name, values in found.items():
        print_phases(f"Where a {name.capitalize()} process spends its time", values)


if __name__ == "__main__":
    main()
