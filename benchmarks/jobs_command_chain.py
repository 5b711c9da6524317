"""A chain of 20 command steps (``python -c pass``): Keel's overhead per step above a bare start.

The pipeline (chain.yml, written by this script) has 20 command steps whose
command is ``python -c pass``; each has a ``uri_folder`` output (left empty) and
takes the previous step's output as an input, so each waits for the one before.
``settings.force_rerun: true`` and a fresh workspace per run: nothing is reused.

The bare cost is ``python -c pass`` started with ``subprocess.run`` (the same
virtualenv's python a step's ``python`` resolves to, the same environment), median
of many. Keel's run is timed in one process: a driver script loads chain.yml
(``keel.load_job``) and imports the runner, then times ``keel.submit(job)``, which
records the job, runs the 20 steps and returns when every record is written. The
figure with a target is (that time - 20 x bare start) / 20. The steps' own records
(start and end, in ms) give the same overhead split into time inside a step and
time between steps. ``keel job create -f chain.yml --wait``, a whole CLI process,
is shown too, and Prefect 3 beside them: a flow of 20 tasks each running
``subprocess.run(["python", "-c", "pass"])``, timed inside the flow.

    python benchmarks/jobs_command_chain.py
    python benchmarks/jobs_command_chain.py --no-prefect --repeat 15
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _harness import Result, median, report
from jobs_processes import (
    BIN,
    DEFAULT_PREFECT_VENV,
    PREFECT_QUIET_ENV,
    PREFECT_REQUIREMENT,
    PrefectRuns,
    bare_python_start,
    fresh_env,
    prefect_env,
    prefect_python,
    run_timed,
)

STEPS = 20
TARGET_MS = 50.0

DRIVER = '''\
"""Run chain.yml with keel.submit in this process (written by benchmarks/jobs_command_chain.py)."""

import json
import time

import keel
import keel.jobs.runner  # imported before the clock starts: once per process, not per step
import keel.jobs.submit
from keel.tracking.sdk import current_workspace
from keel.tracking.search import search_jobs

job = keel.load_job("chain.yml")
store = current_workspace().store  # creates the fresh workspace's database
start = time.perf_counter()
done = keel.submit(job)
seconds = time.perf_counter() - start
steps = search_jobs(store, parent_id=done.id, max_results=1000).jobs
rows = [
    [s.step_name, s.status.value, s.reused_from, s.exit_code, s.start_time, s.end_time]
    for s in sorted(steps, key=lambda s: s.step_name)
]
print(json.dumps({"status": done.status.value, "seconds": seconds, "steps": rows}), flush=True)
'''

PREFECT_FLOW = '''\
"""{steps} tasks each running python -c pass, in a Prefect flow (written by jobs_command_chain.py)."""

import json
import subprocess
import time

from prefect import flow, task


@task
def bare(previous: int) -> int:
    subprocess.run(["python", "-c", "pass"], check=True)
    return previous + 1


@flow
def chain() -> dict:
    start = time.perf_counter()
    count = 0
    for _ in range({steps}):
        count = bare(count)
    return {{"count": count, "seconds": time.perf_counter() - start}}


print(json.dumps(chain()), flush=True)
'''


def chain_yaml(steps: int) -> str:
    """The pipeline: ``python -c pass`` steps, each bound to the previous step's output."""
    lines = [
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
        "type: pipeline",
        "display_name: command_chain",
        "experiment_name: bench",
        "settings:",
        "  force_rerun: true",
        "jobs:",
    ]
    for index in range(steps):
        lines += [f"  step_{index:02d}:", "    type: command", "    command: python -c pass"]
        if index:
            previous = f"${{{{parent.jobs.step_{index - 1:02d}.outputs.done}}}}"
            lines += ["    inputs:", f"      after: {previous}"]
        lines += ["    outputs:", "      done: {type: uri_folder}"]
    return "\n".join(lines) + "\n"


class Project:
    """The scratch folder: chain.yml, the driver, the Prefect flow, workspaces, bytecode cache."""

    def __init__(self, root: Path, prefect: Path | None) -> None:
        self.root = root
        self.folder = root / "project"
        self.folder.mkdir()
        self.pycache = root / "pycache"
        self.prefect = None if prefect is None else PrefectRuns(prefect)
        self.runs = 0
        (self.folder / "chain.yml").write_text(chain_yaml(STEPS), encoding="utf-8")
        (self.folder / "drive.py").write_text(DRIVER, encoding="utf-8")
        (self.folder / "flow.py").write_text(PREFECT_FLOW.format(steps=STEPS), encoding="utf-8")

    def _workspace(self) -> Path:
        self.runs += 1
        return self.root / f"workspace-{self.runs}"

    def in_process(self, *, bytecode: bool = True) -> dict[str, Any]:
        """One driver process in a fresh workspace; its report, checked."""
        workspace = self._workspace()
        env = fresh_env(self.pycache if bytecode else None, KEEL_WORKSPACE=str(workspace))
        found = run_timed([str(BIN / "python"), "drive.py"], env, self.folder).report
        _check(found)
        shutil.rmtree(workspace)
        return found

    def cli(self) -> float:
        """``keel job create -f chain.yml --wait``, a fresh process in a fresh workspace."""
        workspace = self._workspace()
        env = fresh_env(self.pycache, KEEL_WORKSPACE=str(workspace))
        seconds = run_timed(
            [str(BIN / "keel"), "job", "create", "-f", "chain.yml", "--wait"], env, self.folder
        ).seconds
        shutil.rmtree(workspace)
        return seconds

    def prefect_flow(self, home: Path) -> tuple[float, float]:
        """(the flow body's seconds, the whole process's), ``PREFECT_HOME=home``."""
        if self.prefect is None:
            raise SystemExit("Prefect is switched off (--no-prefect)")

        def env() -> dict[str, str]:
            found = prefect_env(home, self.pycache)
            # The tasks' `python` is this virtualenv's, as Keel's steps' is.
            found["PATH"] = f"{BIN}:{found.get('PATH', '')}"
            return found

        finished = self.prefect.run(["flow.py"], env, self.folder)
        if finished.report.get("count") != STEPS:
            raise SystemExit(f"the Prefect flow did not run {STEPS} tasks: {finished.report}")
        return finished.report["seconds"], finished.seconds


def _check(found: dict[str, Any]) -> None:
    steps = found["steps"]
    ran = [s for s in steps if s[1] == "completed" and s[2] is None and s[3] == 0]
    if found["status"] != "completed" or len(ran) != STEPS:
        raise SystemExit(f"Keel's chain did not run {STEPS} steps: {found}")


def record_split(runs: list[dict[str, Any]]) -> dict[str, float]:
    """From the steps' records (ms): a step's duration, the first step's, the gap between steps."""
    durations, firsts, gaps = [], [], []
    for run in runs:
        steps = run["steps"]
        firsts.append(float(steps[0][5] - steps[0][4]))
        durations += [float(s[5] - s[4]) for s in steps[1:]]
        gaps += [float(later[4] - earlier[5]) for earlier, later in itertools.pairwise(steps)]
    return {
        "step_ms": median(durations),
        "first_step_ms": median(firsts),
        "gap_ms": median(gaps),
    }


def per_step(seconds: float, bare: float) -> float:
    """Milliseconds per step above a bare start."""
    return (seconds - STEPS * bare) / STEPS * 1000


def result(name: str, samples: list[float], *, target: bool, note: str = "", unit: str = "ms") -> Result:
    value = median(samples)
    return Result(
        name=name,
        value=value,
        unit=unit,
        samples=samples,
        target=f"<= {TARGET_MS:g} ms" if target else None,
        passed=value <= TARGET_MS if target else None,
        note=note,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="Keel runs (one process each)")
    parser.add_argument("--bare-repeat", type=int, default=21, help="bare `python -c pass` starts")
    parser.add_argument("--prefect-repeat", type=int, default=5, help="Prefect processes (about 10 s each)")
    parser.add_argument("--no-prefect", action="store_true")
    parser.add_argument("--prefect-venv", type=Path, default=DEFAULT_PREFECT_VENV)
    args = parser.parse_args()
    load_before = os.getloadavg()
    prefect, prefect_version = (None, None) if args.no_prefect else prefect_python(args.prefect_venv)
    with tempfile.TemporaryDirectory(prefix="keel-bench-commands-") as folder:
        project = Project(Path(folder), prefect)
        env = fresh_env(project.pycache)
        bare_samples = bare_python_start(env, project.folder, args.bare_repeat)
        bare = median(bare_samples)
        bash = [
            run_timed(["bash", "-c", f"{BIN / 'python'} -c pass"], env, project.folder).seconds
            for _ in range(args.bare_repeat)
        ]
        project.in_process()  # untimed: fills the bytecode cache and the OS's file cache
        runs = [project.in_process() for _ in range(args.repeat)]
        cold = [project.in_process(bytecode=False) for _ in range(max(3, args.repeat // 2))]
        cli = [project.cli() for _ in range(max(7, args.repeat // 2))]
        split = record_split(runs)
        seconds = [run["seconds"] for run in runs]
        results = [
            result("bare `python -c pass` (subprocess.run)", [s * 1000 for s in bare_samples], target=False),
            result("bare `bash -c 'python -c pass'`, for scale", [s * 1000 for s in bash], target=False),
            result(
                f"Keel: {STEPS}-step chain, keel.submit in one process",
                [s * 1000 for s in seconds],
                target=False,
                note=f"{STEPS} steps run and recorded, none reused",
            ),
            result(
                "Keel: overhead per step, (run - 20 x bare) / 20",
                [per_step(s, bare) for s in seconds],
                target=True,
            ),
            result(
                "Keel: per step from the records: step duration - bare",
                [split["step_ms"] - bare * 1000],
                target=False,
                note=(
                    f"steps 2-{STEPS}: {split['step_ms']:.0f} ms each; the first "
                    f"{split['first_step_ms']:.0f} ms (it starts the tracking endpoint); "
                    f"{split['gap_ms']:.0f} ms between steps"
                ),
            ),
            result(
                "Keel: overhead per step, PYTHONDONTWRITEBYTECODE=1",
                [per_step(run["seconds"], bare) for run in cold],
                target=False,
            ),
            result(
                "Keel CLI: `keel job create -f chain.yml --wait`, whole process",
                cli,
                target=False,
                unit="s",
                note=f"(wall - 20 x bare) / 20 = {per_step(median(cli), bare):.0f} ms, CLI start-up included",
            ),
        ]
        if prefect is not None:
            home = project.root / "prefect-home"
            project.prefect_flow(home)  # untimed: bytecode cache and Prefect's database
            flows = [project.prefect_flow(home) for _ in range(args.prefect_repeat)]
            results += [
                result(
                    "Prefect 3: overhead per task inside the flow, (flow - 20 x bare) / 20",
                    [per_step(body, bare) for body, _ in flows],
                    target=False,
                ),
                result(
                    "Prefect 3: whole process (existing PREFECT_HOME)",
                    [whole for _, whole in flows],
                    target=False,
                    unit="s",
                    note=project.prefect.note() if project.prefect else "",
                ),
            ]
    report(
        "jobs_command_chain",
        f"A chain of {STEPS} command steps (`python -c pass`): overhead per step above a bare start",
        results,
        steps=STEPS,
        repeat=args.repeat,
        bare_repeat=args.bare_repeat,
        bare_seconds=bare,
        record_split_ms=split,
        timed="keel.submit(keel.load_job('chain.yml')) in one process, runner imported before the clock",
        prefect=None
        if prefect is None
        else {
            "version": prefect_version,
            "requirement": PREFECT_REQUIREMENT,
            "environment": {"PREFECT_HOME": "<scratch folder>", **PREFECT_QUIET_ENV},
            "repeat": args.prefect_repeat,
        },
        load_average={"start": load_before, "end": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
