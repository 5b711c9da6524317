"""Quickstart stage 2: the same question as a YAML pipeline, a sweep, and a fully reused rerun.

The pipeline and sweep files ship inside the package (``keel/quickstart/pipeline``)
and are copied into the workspace, next to the monthly data files, so a person
can open them, change them and run them with ``keel job create``.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.workspace import Workspace

SHIPPED = Path(__file__).parent / "pipeline"


@dataclass(frozen=True)
class StageResult:
    pipeline: str
    sweep: str
    rerun: str
    folder: Path


def write_monthly_files(flights: Any, folder: Path) -> int:
    """The raw data as it would arrive: one CSV file per month."""
    folder.mkdir(parents=True, exist_ok=True)
    for month, rows in flights.groupby("month"):
        rows.to_csv(folder / f"flights-2013-{int(month):02d}.csv", index=False)
    return int(flights["month"].nunique())


def copy_pipeline(workspace: Workspace) -> Path:
    target = workspace.config.root / "quickstart" / "flights-pipeline"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def run_and_report(workspace: Workspace, console: Any, path: Path, overrides: list[str], title: str) -> str:
    """Submit a job file, run it here, print each step as it ends; returns the job name."""
    from keel.jobs import components
    from keel.jobs.stream import follow
    from keel.jobs.submit import run, submit
    from keel.specs import load_job

    spec = load_job(path, overrides, lookup_component=components.lookup(workspace))
    job = submit(workspace, spec)
    console.print(f"[bold]{title}[/bold]: job {job.name}")
    finished = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run(workspace, job.name)
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=target, daemon=True)
    started = time.perf_counter()
    thread.start()
    follow(
        workspace,
        job.name,
        printer=lambda line: console.print(f"  {line}", markup=False, highlight=False),
        finished=finished,
        show_logs=False,
    )
    thread.join()
    if failure:
        raise failure[0]
    console.print(f"  [dim]{time.perf_counter() - started:.1f} s[/dim]")
    return job.name


def run_stage(workspace: Workspace, console: Any, flights: Any) -> StageResult:
    from keel.jobs.records import stored_outputs
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    folder = copy_pipeline(workspace)
    months = write_monthly_files(flights, folder / "raw")
    console.print(f"data: {len(flights):,} flights in {months} monthly files under {folder / 'raw'}")
    pipeline = run_and_report(
        workspace, console, folder / "pipeline.yml", [], "pipeline: prepare → train → evaluate"
    )
    root = get_job(workspace.store, pipeline)
    steps = {job.step_name: job for job in search_jobs(workspace.store, parent_id=root.id).jobs}
    features = f"azureml://jobs/{steps['prepare'].name}/outputs/features"
    auc = stored_outputs(workspace.store, steps["evaluate"].id)["auc"].value
    console.print(f"  the pipeline's model: valid AUC {auc:.4f}")
    sweep = run_and_report(
        workspace,
        console,
        folder / "sweep.yml",
        [f"inputs.data.path={features}"],
        "sweep: random forest depth and leaf size",
    )
    rerun = run_and_report(
        workspace, console, folder / "pipeline.yml", [], "the same pipeline again (every step reused)"
    )
    return StageResult(pipeline=pipeline, sweep=sweep, rerun=rerun, folder=folder)
