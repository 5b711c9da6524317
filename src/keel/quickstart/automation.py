"""Quickstart stage 6: schedules that run the work, and a person's approval before a release.

Schedules: ``december-daily.yml`` is a daily tumbling window from December 1st; its
windows are long past, so the scheduler backfills them, oldest first, each exactly
once, and each window's job scores its day (``${{trigger.window_start}}`` names it).
``score-incoming.yml`` watches the source store's ``incoming/`` folder and scores every
new file; the quickstart drops two days of raw flights there. One scheduler runs here,
in a thread, for as long as those jobs take (``keel scheduler`` and ``keel up`` run
the same loop).
Approval: the stage-3 pipeline's gradient-boosting model is registered as the
challenger; ``release.yml`` compares it with the champion on December, stops at an
approval step (the pipeline is paused, no process waits), and once approved makes it
the champion with all of the online endpoint's traffic. The quickstart approves it
itself, through the same function as ``keel approval approve``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.quickstart.scoring import MODEL
from keel.workspace import Workspace

WINDOWS = "quickstart_december_daily"
INCOMING = "quickstart_score_incoming"
DROPPED_DAYS = (30, 31)  # raw flights of these December days land in incoming/
CHALLENGER = "challenger"
WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Automated:
    """What the schedules and the release did."""

    windows: list[tuple[str, str, str]]  # (window start, job, state), oldest first
    files: list[tuple[str, str, str]]  # (file, job, state)
    challenger: str  # name:version
    release: str  # the release pipeline's job
    approval_id: int
    comment: str


def run_automation_stage(workspace: Workspace, console: Any, folder: Path, *, pipeline: str) -> Automated:
    """Stage 6: backfill December's first days and score dropped files, then a gated release."""
    windows, files = run_schedules(workspace, console, folder)
    challenger = register_challenger(workspace, console, pipeline)
    release, approval_id, comment = run_release(workspace, console, folder)
    return Automated(windows, files, challenger, release, approval_id, comment)


# -- schedules -----------------------------------------------------------------------------


def run_schedules(
    workspace: Workspace, console: Any, folder: Path
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Create both schedules afresh, run a scheduler until their jobs have ended, and show them."""
    from keel.schedules.loop import run_scheduler

    incoming = _incoming_folder(workspace)
    for day in DROPPED_DAYS:  # left by an earlier quickstart: they would not be new
        (incoming / _dropped_name(day)).unlink(missing_ok=True)
    for file in ("december-daily.yml", "score-incoming.yml"):
        _fresh_schedule(workspace, console, folder / file)
    started = time.perf_counter()
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler, args=(workspace,), kwargs={"stop": stop, "tick_seconds": 0.25}, daemon=True
    )
    scheduler.start()
    try:
        _drop_files(workspace, console, incoming)
        fired = _wait_for_fires(workspace, {WINDOWS: 4, INCOMING: len(DROPPED_DAYS)})
    finally:
        stop.set()
        scheduler.join(timeout=30)
    windows = _show_windows(workspace, console, fired[WINDOWS])
    files = _show_files(workspace, console, fired[INCOMING])
    console.print(f"  [dim]{time.perf_counter() - started:.1f} s, the scheduler stopped[/dim]")
    return windows, files


def _fresh_schedule(workspace: Workspace, console: Any, path: Path) -> None:
    """The schedule from ``path``; one of the same name (an earlier quickstart's) is deleted first,
    so its windows and files fire again."""
    from keel.errors import NotFound
    from keel.schedules.operations import create_schedule, delete_schedule
    from keel.schedules.spec import read_schedule

    name = read_schedule(path).name
    with contextlib.suppress(NotFound):
        delete_schedule(workspace, name)
    created = create_schedule(workspace, path)
    trigger = created.schedule.trigger
    what = (
        "daily tumbling window, 2013-12-01 to 2013-12-05, one window at a time"
        if trigger["type"] == "tumbling_window"
        else f"storage event: new *.csv under incoming/ of datastore {trigger['datastore']}"
    )
    console.print(f"schedule {name}: {what} (keel schedule create -f {path})")


def _incoming_folder(workspace: Workspace) -> Path:
    from keel.data.locations import in_datastore

    return Path(in_datastore(workspace, "source", "incoming").path)


def _dropped_name(day: int) -> str:
    return f"flights-2013-12-{day:02d}.csv"


def _drop_files(workspace: Workspace, console: Any, incoming: Path) -> None:
    """December's last days as files of their own, each moved into ``incoming/`` whole."""
    import pandas as pd

    from keel.quickstart.pipelines import month_file

    december = pd.read_csv(incoming / month_file(12))
    for day in DROPPED_DAYS:
        staged = incoming.parent / f".{_dropped_name(day)}.part"  # beside, not in, the watched folder
        december[december["day"] == day].to_csv(staged, index=False)
        os.replace(staged, incoming / _dropped_name(day))
        console.print(f"  dropped {_dropped_name(day)} into {incoming}")


def _wait_for_fires(workspace: Workspace, wanted: dict[str, int]) -> dict[str, list[Any]]:
    """Every schedule's fires once ``wanted[name]`` of them have ended, oldest first."""
    from keel.errors import Unavailable
    from keel.schedules.fires import FINISHED, recent_fires
    from keel.schedules.records import get_schedule

    ids = {name: get_schedule(workspace.store, name).id for name in wanted}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        fired = {name: recent_fires(workspace.store, ids[name], limit=100)[::-1] for name in wanted}
        ended = {name: [f for f in fires if f.state in FINISHED] for name, fires in fired.items()}
        if all(len(ended[name]) >= count for name, count in wanted.items()):
            return fired
        if time.monotonic() > deadline:
            counts = ", ".join(f"{name}: {len(ended[name])} of {count}" for name, count in wanted.items())
            raise Unavailable(f"the scheduled jobs did not end within {WAIT_SECONDS:.0f} s ({counts})")
        time.sleep(0.2)


def _show_windows(workspace: Workspace, console: Any, fires: list[Any]) -> list[tuple[str, str, str]]:
    console.print("  December backfilled, one window a day, oldest first:")
    shown = []
    for fire in fires:
        start = str(fire.values.get("window_start", ""))
        console.print(f"    window {start[:10]} → {_ran(workspace, fire)}")
        shown.append((start, fire.job_name or "", fire.state.value))
    _raise_on_failure(fires)
    return shown


def _show_files(workspace: Workspace, console: Any, fires: list[Any]) -> list[tuple[str, str, str]]:
    console.print("  one job per file that landed:")
    shown = []
    for fire in sorted(fires, key=lambda fire: str(fire.values.get("file_name"))):
        name = str(fire.values.get("file_name", fire.key))
        console.print(f"    {name} → {_ran(workspace, fire)}")
        shown.append((name, fire.job_name or "", fire.state.value))
    _raise_on_failure(fires)
    return shown


def _ran(workspace: Workspace, fire: Any) -> str:
    """``job NAME: completed, 979 flights, 14.5% predicted late, accuracy 94.3%``."""
    from keel.tracking.jobs import get_job

    said = f"job {fire.job_name}: {fire.state.value}"
    if fire.job_name is None:
        return said
    metrics = get_job(workspace.store, fire.job_name).metrics
    if "rows" not in metrics:
        return said
    return (
        f"{said}, {metrics['rows'].last:,.0f} flights, {metrics['predicted_late'].last:.1%} predicted late, "
        f"accuracy {metrics['accuracy'].last:.1%}"
    )


def _raise_on_failure(fires: list[Any]) -> None:
    from keel.errors import KeelError

    for fire in fires:
        if fire.state.value != "completed":
            reason = fire.error or f"job {fire.job_name} {fire.state.value}"
            raise KeelError(
                f"a scheduled job did not complete: {reason}", hint=f"keel job show {fire.job_name}"
            )


# -- the gated release ---------------------------------------------------------------------


def register_challenger(workspace: Workspace, console: Any, pipeline: str) -> str:
    """The stage-3 pipeline's model (gradient boosting) as a version of ``flights-delay``, @challenger."""
    from keel.models.aliases import set_alias
    from keel.models.registry import Request
    from keel.quickstart.scoring import register_once
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    root = get_job(workspace.store, pipeline)
    train = next(
        job for job in search_jobs(workspace.store, parent_id=root.id).jobs if job.step_name == "train"
    )
    request = Request(
        name=MODEL,
        path=f"azureml://jobs/{train.name}/outputs/model",
        description="will a flight arrive more than 15 minutes late? (the quickstart pipeline's model)",
        tags={"pipeline": pipeline},
        reuse_latest=True,
    )
    version, created = register_once(workspace, train.id, "model", request)
    set_alias(workspace, MODEL, CHALLENGER, version.version)
    console.print(
        f"{'registered' if created else 'already registered:'} model {version.name}:{version.version} "
        f"from the pipeline's train step {train.name}; "
        f"@{CHALLENGER} → version {version.version}"
    )
    return f"{version.name}:{version.version}"


def run_release(workspace: Workspace, console: Any, folder: Path) -> tuple[str, int, str]:
    """Submit ``release.yml`` and run it here; when it pauses at the approval step, approve it as a
    person would, and follow its resumed run to the end. Returns the job, the approval and comment."""
    from keel.errors import KeelError
    from keel.jobs.submit import run, submit
    from keel.quickstart.pipelines import follow_while_running
    from keel.specs import load_job
    from keel.tracking.jobs import get_job

    job = submit(workspace, load_job(folder / "release.yml"))
    console.print(f"[bold]release: compare → approval → promote[/bold]: job {job.name}")
    decided: list[tuple[int, str]] = []
    follow_while_running(
        workspace,
        console,
        job.name,
        lambda: run(workspace, job.name),
        show_logs=True,
        tick=lambda: _approve_when_asked(workspace, console, job.name, decided),
    )
    ended = get_job(workspace.store, job.name)
    if ended.status.value != "completed" or not decided:
        raise KeelError(
            f"the release {job.name} {ended.status.label.lower()}", hint=f"keel job show {job.name}"
        )
    return job.name, decided[0][0], decided[0][1]


def _approve_when_asked(
    workspace: Workspace, console: Any, pipeline: str, decided: list[tuple[int, str]]
) -> None:
    """Once the pipeline's approval is pending: show what a person would do, then do it."""
    from keel import approvals

    if decided:
        return
    pending = approvals.list_approvals(workspace.store, pipeline=pipeline)
    if not pending:
        return
    request = pending[0]
    comment = _comment(workspace, pipeline)
    where = workspace.config
    prefix = f"keel --workspace {where.root}" if where.source != "default" else "keel"
    console.print(f"  approval {request.id} waits for a person: {request.instructions}")
    console.print(
        f'  a person would run: {prefix} approval approve {request.id} --comment "{comment}"', markup=False
    )
    console.print(
        f'               or: {prefix} approval reject {request.id} --comment "why not"', markup=False
    )
    approvals.approve(workspace, request.id, by="quickstart", comment=comment)
    decided.append((request.id, comment))
    console.print(
        "  approved by the quickstart (whatever the figures say: a person would weigh them); "
        "the paused pipeline resumes in a runner of its own"
    )


def _comment(workspace: Workspace, pipeline: str) -> str:
    """What the approver saw: the compare step's December AUCs."""
    from keel.tracking.jobs import get_job
    from keel.tracking.search import search_jobs

    root = get_job(workspace.store, pipeline)
    compare = next(
        job for job in search_jobs(workspace.store, parent_id=root.id).jobs if job.step_name == "compare"
    )
    metrics = compare.metrics
    if "challenger_auc" not in metrics:
        return "December report read"
    return (
        f"December AUC {metrics['challenger_auc'].last:.4f} against the champion's "
        f"{metrics['champion_auc'].last:.4f}"
    )
