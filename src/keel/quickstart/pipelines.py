"""Quickstart stages 2 and 3: data in, then the same question as a YAML pipeline and a sweep.

Data: monthly flight files land in a "source" datastore; a pipeline copies them
into the workspace (a verified copy job), joins and cleans them with DuckDB, and
registers the result as the versioned, profiled data asset ``flights-clean``.
Pipelines: prepare → train → evaluate reads that asset; a sweep reads the features
the pipeline registered; the same pipeline again reuses every step.

The YAML files ship inside the package (``keel/quickstart/pipeline``) and are copied
into the workspace, so a person can open them, change them and run them with
``keel job create``.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.quickstart.flights import HOLDOUT_MONTH
from keel.workspace import Workspace

SHIPPED = Path(__file__).parent / "pipeline"
_LOG_TIME = re.compile(r"(?<=\] )\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")  # a log line's time: noise here


@dataclass(frozen=True)
class StageResult:
    data: str
    pipeline: str
    sweep: str
    rerun: str
    folder: Path


def fill_source(workspace: Workspace, flights: Any, airlines: Any, later: Any) -> Path:
    """The raw data as it would arrive in a source store: one CSV per month, a lookup table, and
    under ``incoming/`` the month that came later (``later``), which the data pipeline never reads."""
    from keel.data.datastore_specs import LocalSpec
    from keel.data.datastores import create_datastore, list_datastores

    folder = workspace.config.root / "quickstart" / "source"
    for subfolder in ("flights", "incoming"):
        (folder / subfolder).mkdir(parents=True, exist_ok=True)
    for month, rows in flights.groupby("month"):
        rows.to_csv(folder / "flights" / month_file(int(month)), index=False)
    (folder / "flights" / month_file(HOLDOUT_MONTH)).unlink(missing_ok=True)  # left by an older quickstart
    later.to_csv(folder / "incoming" / month_file(HOLDOUT_MONTH), index=False)
    airlines.to_csv(folder / "airlines.csv", index=False)
    if "source" not in {datastore.name for datastore in list_datastores(workspace)}:
        create_datastore(workspace, LocalSpec(type="local", name="source", path=str(folder)))
    return folder


def month_file(month: int) -> str:
    return f"flights-2013-{month:02d}.csv"


def copy_pipeline(workspace: Workspace) -> Path:
    target = workspace.config.root / "quickstart" / "flights-pipeline"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def run_and_report(workspace: Workspace, console: Any, path: Path, overrides: list[str], title: str) -> str:
    """Submit a job file, run it here, print each step as it ends; returns the job name."""
    from keel.jobs import components
    from keel.jobs.submit import run, submit
    from keel.specs import load_job

    spec = load_job(path, overrides, lookup_component=components.lookup(workspace))
    job = submit(workspace, spec)
    console.print(f"[bold]{title}[/bold]: job {job.name}")
    follow_while_running(workspace, console, job.name, lambda: run(workspace, job.name))
    return job.name


def follow_while_running(
    workspace: Workspace,
    console: Any,
    name: str,
    run: Callable[[], object],
    *,
    show_logs: bool = False,
    tick: Callable[[], object] | None = None,
) -> None:
    """Run a queued job in a thread here while printing its progress, until it ends (a paused pipeline
    too: ``tick`` runs at every poll, e.g. to decide its approval); raises what the run raised."""
    from keel.jobs.stream import follow

    finished = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=target, daemon=True)
    started = time.perf_counter()
    thread.start()
    follow(
        workspace,
        name,
        printer=lambda line: console.print(f"  {_LOG_TIME.sub('', line)}", markup=False, highlight=False),
        finished=finished,
        show_logs=show_logs,
        tick=tick,
    )
    thread.join()
    if failure:
        raise failure[0]
    console.print(f"  [dim]{time.perf_counter() - started:.1f} s[/dim]")


def run_data_stage(
    workspace: Workspace, console: Any, flights: Any, airlines: Any, later: Any
) -> tuple[Path, str]:
    """``flights`` land as monthly files and go through the data pipeline; ``later`` (December)
    lands beside them, for the batch endpoint to score in stage 4."""
    from keel.data.assets import resolve_asset

    folder = copy_pipeline(workspace)
    source = fill_source(workspace, flights, airlines, later)
    months = int(flights["month"].nunique())
    console.print(
        f"source store: {len(flights):,} flights in {months} monthly files under {source / 'flights'}; "
        f"December's {len(later):,} wait in incoming/, unseen until stage 4"
    )
    job = run_and_report(
        workspace, console, folder / "data.yml", [], "data: copy in → join and clean → register"
    )
    asset = resolve_asset(workspace, "azureml:flights-clean@latest")
    profile = asset.profile or {}
    console.print(
        f"  registered {asset.name}:{asset.version}: {profile.get('rows', '?'):,} rows, "
        f"{len(profile.get('columns', []))} columns, profiled (keel data show {asset.name} --profile)"
    )
    return folder, job


def run_stage(workspace: Workspace, console: Any, folder: Path, data_job: str) -> StageResult:
    from keel.jobs.records import stored_outputs
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    pipeline = run_and_report(
        workspace, console, folder / "pipeline.yml", [], "pipeline: prepare → train → evaluate"
    )
    root = get_job(workspace.store, pipeline)
    steps = {job.step_name: job for job in search_jobs(workspace.store, parent_id=root.id).jobs}
    auc = stored_outputs(workspace.store, steps["evaluate"].id)["auc"].value
    console.print(f"  the pipeline's model: valid AUC {auc:.4f}")
    sweep = run_and_report(
        workspace, console, folder / "sweep.yml", [], "sweep: random forest depth and leaf size"
    )
    rerun = run_and_report(
        workspace, console, folder / "pipeline.yml", [], "the same pipeline again (every step reused)"
    )
    return StageResult(data=data_job, pipeline=pipeline, sweep=sweep, rerun=rerun, folder=folder)
