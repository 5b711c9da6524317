"""A fully reused re-run of a 5-step YAML pipeline: the whole ``keel job create`` process.

The pipeline (pipe.yml, written by this script with its ``src/step.py`` and a
``data`` folder) has 5 command steps with ``code: ./src``; each reads the previous
step's ``uri_folder`` output (the first reads the pipeline's data input) and writes
its own. It runs once in a fresh workspace to fill the cache; then
``keel job create -f pipe.yml --wait`` is timed as a fresh process, spawn to exit,
each time: the code is snapshotted, the input digested (remembered by size and
mtime), each step's reuse key computed and matched, and the records written. Every
re-run is checked with ``keel job show NAME -o json``: five steps, each completed
and "reused from" an earlier step. The first run, which runs the five steps, is
shown for scale.

    python benchmarks/jobs_reuse.py
    python benchmarks/jobs_reuse.py --repeat 15
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _harness import Result, median, report
from jobs_processes import BIN, BYTECODE, fresh_env, run_timed

STEPS = 5
TARGET_SECONDS = 1.5

STEP_SCRIPT = '''\
"""Copy the text files of the input folder into the output folder, adding one line."""

import sys
from pathlib import Path

source, target, label = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
text = "".join(path.read_text() for path in sorted(source.glob("*.txt")))
(target / "data.txt").write_text(f"{text}{label}\\n")
'''


def pipeline_yaml(steps: int) -> str:
    lines = [
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
        "type: pipeline",
        "display_name: five_steps",
        "experiment_name: bench",
        "inputs:",
        "  raw: {type: uri_folder, path: ./data}",
        "outputs:",
        "  final:",
        "jobs:",
    ]
    for index in range(steps):
        previous = f"${{{{parent.jobs.step_{index - 1}.outputs.out}}}}"
        source = "${{parent.inputs.raw}}" if index == 0 else previous
        output = "${{parent.outputs.final}}" if index == steps - 1 else "{type: uri_folder}"
        lines += [
            f"  step_{index}:",
            "    type: command",
            "    code: ./src",
            f"    command: python step.py ${{{{inputs.data}}}} ${{{{outputs.out}}}} step_{index}",
            "    inputs:",
            f"      data: {source}",
            "    outputs:",
            f"      out: {output}",
        ]
    return "\n".join(lines) + "\n"


class Project:
    """The pipeline's folder, its workspaces and the bytecode cache, in a scratch folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "project"
        (self.folder / "src").mkdir(parents=True)
        (self.folder / "data").mkdir()
        (self.folder / "src" / "step.py").write_text(STEP_SCRIPT, encoding="utf-8")
        rows = "".join(f"{n},{n * n}\n" for n in range(1000))
        (self.folder / "data" / "rows.txt").write_text(rows, encoding="utf-8")
        (self.folder / "pipe.yml").write_text(pipeline_yaml(STEPS), encoding="utf-8")
        self.pycache = root / "pycache"
        self.workspace = root / "workspace"
        self.runs = 0

    def env(self, *, bytecode: bool = True) -> dict[str, str]:
        return fresh_env(self.pycache if bytecode else None, KEEL_WORKSPACE=str(self.workspace))

    def create(self, *, bytecode: bool = True) -> tuple[str, float]:
        """``keel job create -f pipe.yml --wait`` as a fresh process: (job name, seconds)."""
        self.runs += 1
        name = f"bench_run_{self.runs}"
        argv = [str(BIN / "keel"), "job", "create", "-f", "pipe.yml", "--wait", "--name", name]
        return name, run_timed(argv, self.env(bytecode=bytecode), self.folder).seconds

    def first_run(self) -> float:
        """A run in a fresh workspace: every step runs. The workspace is kept for the re-runs."""
        shutil.rmtree(self.workspace, ignore_errors=True)
        name, seconds = self.create()
        if any(step.get("reused_from") for step in self.steps(name)):
            raise SystemExit(f"{name} reused a step in a fresh workspace")
        return seconds

    def steps(self, name: str) -> list[dict[str, object]]:
        """The steps of ``name`` as ``keel job show -o json`` gives them, checked complete."""
        job = self.show(name)
        steps = [self.show(child) for child in job["children"]]
        if job["status"] != "completed" or len(steps) != STEPS:
            raise SystemExit(f"{name}: {job['status']} with {len(steps)} steps, expected {STEPS} completed")
        return steps

    def check_reused(self, name: str) -> None:
        for step in self.steps(name):
            note = str(step.get("reuse_note") or "")
            if step["status"] != "completed" or not step.get("reused_from") or not note.startswith("reused"):
                raise SystemExit(f"{name}: step {step['step']} was not reused ({note or step['status']})")

    def show(self, name: str) -> dict[str, object]:
        argv = [str(BIN / "keel"), "job", "show", name, "-o", "json"]
        done = subprocess.run(
            argv, env=self.env(), cwd=self.folder, capture_output=True, text=True, check=True
        )
        found: dict[str, object] = json.loads(done.stdout)
        return found


def result(name: str, samples: list[float], *, target: bool, note: str = "") -> Result:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed re-runs (one process each)")
    parser.add_argument("--first-repeat", type=int, default=3, help="first runs, in fresh workspaces")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="keel-bench-reuse-") as folder:
        project = Project(Path(folder))
        project.first_run()  # untimed: fills the bytecode cache and the OS's file cache
        first = [project.first_run() for _ in range(args.first_repeat)]
        reruns = [project.create() for _ in range(args.repeat)]
        cold = [project.create(bytecode=False) for _ in range(max(3, args.repeat // 2))]
        for name, _ in reruns + cold:
            project.check_reused(name)
    results = [
        result(
            f"keel job create, fully reused re-run of {STEPS} steps, whole process",
            [seconds for _, seconds in reruns],
            target=True,
            note=f"every step of every re-run says 'reused from' ({len(reruns) + len(cold)} checked)",
        ),
        result(
            "the same, PYTHONDONTWRITEBYTECODE=1",
            [seconds for _, seconds in cold],
            target=False,
            note="every Keel module compiled at start",
        ),
        result(
            "first run in a fresh workspace (runs the 5 steps), for scale",
            first,
            target=False,
        ),
    ]
    report(
        "jobs_reuse",
        f"A fully reused re-run of a {STEPS}-step YAML pipeline (`keel job create`, spawn to exit)",
        results,
        steps=STEPS,
        repeat=args.repeat,
        first_repeat=args.first_repeat,
        timed="keel job create -f pipe.yml --wait --name <name>, from the pipeline's folder",
        bytecode=BYTECODE,
        load_average={"start": load_before, "end": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
