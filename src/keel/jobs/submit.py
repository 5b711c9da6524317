"""Submit a resolved job: snapshot its code, record it, and run it here or in the background.

``submit`` records the job (queued) with its resolved spec, in which every code
folder has been replaced by its snapshot digest; ``run`` executes a recorded job
in this process; ``start_in_background`` hands it to a detached runner process
(``python -m keel.jobs run NAME``) so ``keel job create`` can return at once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from keel.errors import Conflict, InvalidInput
from keel.jobs import records
from keel.jobs.content import DigestCache
from keel.jobs.leftovers import stop_leftovers
from keel.jobs.runner import PreviousStep, Runner
from keel.jobs.snapshot import snapshot
from keel.specs.resolved import Component, ResolvedJob, Step
from keel.store.schema import jobs as jobs_table
from keel.tracking import jobs as job_ops
from keel.tracking.entities import TERMINAL_STATUSES, Job, JobStatus
from keel.tracking.experiments import get_or_create_experiment
from keel.workspace import Workspace


def submit(
    workspace: Workspace,
    spec: ResolvedJob,
    *,
    name: str | None = None,
    experiment_name: str | None = None,
    display_name: str | None = None,
) -> Job:
    """Record ``spec`` as a queued job, with its code frozen; nothing runs yet."""
    frozen = spec.model_copy(update={"root": _freeze(spec.root, _Snapshotter(workspace))})
    experiment = get_or_create_experiment(
        workspace.store, experiment_name or spec.experiment_name or _default_experiment()
    )
    job = job_ops.create_job(
        workspace.store,
        experiment,
        name=name or spec.name,
        display_name=display_name or spec.display_name,
        job_type=spec.kind,
        status=JobStatus.QUEUED,
        description=spec.description,
        tags=spec.tags,
        user_id=_user(),
    )
    with workspace.store.write() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job.id)
            .values(spec=frozen.model_dump_json(), step_name="", compute=frozen.root.compute or "local")
        )
    return job


def _default_experiment() -> str:
    """Azure ML's default: the name of the folder the job was submitted from."""
    return Path.cwd().name or "Default"


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


class _Snapshotter:
    """Snapshots each distinct code folder once per submission."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._digests = DigestCache(workspace.store)
        self._done: dict[str, str] = {}

    def __call__(self, folder: str) -> str:
        if folder not in self._done:
            scratch = self._workspace.config.root / "runs" / ".staging"
            self._done[folder] = snapshot(Path(folder), self._workspace.artifacts, self._digests, scratch)
        return self._done[folder]


def _freeze(step: Step, snapshotter: _Snapshotter) -> Step:
    component = _freeze_component(step.component, snapshotter)
    return step.model_copy(update={"component": component})


def _freeze_component(component: Component, snapshotter: _Snapshotter) -> Component:
    update: dict[str, object] = {}
    if component.code is not None and component.code_digest is None:
        update["code_digest"] = snapshotter(component.code)
    if component.steps:
        update["steps"] = {name: _freeze(step, snapshotter) for name, step in component.steps.items()}
    return component.model_copy(update=update) if update else component


def load_spec(workspace: Workspace, name: str) -> tuple[int, ResolvedJob]:
    job_id, text = records.job_spec(workspace.store, name)
    if text is None:
        raise InvalidInput(f"job {name!r} was not submitted by Keel's runner (it has no spec to run)")
    return job_id, ResolvedJob.model_validate_json(text)


def run(workspace: Workspace, name: str, *, previous: dict[str, PreviousStep] | None = None) -> JobStatus:
    """Run a queued job in this process until it ends; returns its final status."""
    job_id, spec = load_spec(workspace, name)
    status = records.job_status(workspace.store, job_id)
    if status != JobStatus.QUEUED:
        raise Conflict(f"job {name!r} is {status.value}; only a queued job can be started")
    return Runner(workspace, job_id, spec, previous=previous).run()


def resume(workspace: Workspace, name: str) -> JobStatus:
    """Run what remains of a paused pipeline in this process, if this process claims it
    (paused → running; only one claimer wins); otherwise return the status it has."""
    job_id, spec = load_spec(workspace, name)
    if not records.claim_paused(workspace.store, job_id):
        return records.job_status(workspace.store, job_id)
    return Runner(workspace, job_id, spec, resume=True).run()


def start_in_background(
    workspace: Workspace, name: str, *, rerun_of: str | None = None, resume: bool = False
) -> None:
    """Start a detached runner process for ``name`` that outlives this one.

    It is started through ``sh -c '… &'`` so it is re-parented at once: no zombie
    is left in a long-lived caller, and nothing here waits for it. The runner is
    told which keel.yaml this workspace came from, for its settings (webhooks).
    """
    config = workspace.config
    log = config.root / "runs" / f"{name}.runner.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    verb = "resume" if resume else "run"
    command = [sys.executable, "-m", "keel.jobs", verb, name, "--workspace", str(config.root)]
    if rerun_of:
        command += ["--rerun-of", rerun_of]
    if config.sections and Path(config.source).is_file():
        command += ["--config", config.source]
    environment = dict(os.environ)
    environment.update(KEEL_DATABASE_URL=config.database_url, KEEL_ARTIFACTS_URL=config.artifacts_url)
    line = f"{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1 < /dev/null &"
    subprocess.run(["/bin/sh", "-c", line], env=environment, start_new_session=True, check=True)


def rerun(workspace: Workspace, name: str) -> Job:
    """A new job with the same spec as ``name`` (run it with ``previous_steps(name)``)."""
    old_id, spec = load_spec(workspace, name)
    old = job_ops.get_job_by_id(workspace.store, old_id)
    if old.status not in TERMINAL_STATUSES:
        raise Conflict(f"job {name!r} is still {old.status.value}; cancel it or wait before rerunning")
    stop_leftovers(workspace.store, old_id)
    job = submit(workspace, spec, experiment_name=old.experiment_name, display_name=old.display_name)
    job_ops.set_tags(workspace.store, job.id, {"keel.rerun_of": name})
    return job


def previous_steps(workspace: Workspace, name: str) -> dict[str, PreviousStep]:
    """How each step of an earlier run ended, by path, so a rerun reuses what completed."""
    old_id, spec = load_spec(workspace, name)
    found = {
        path: PreviousStep(job_id, job_name, status)
        for path, (job_id, job_name, status) in records.steps_of(workspace.store, old_id).items()
    }
    if spec.kind != "pipeline":
        old = job_ops.get_job_by_id(workspace.store, old_id)
        found[""] = PreviousStep(old.id, old.name, old.status)
    return found


def cancel(workspace: Workspace, name: str) -> JobStatus:
    """Ask the runner to stop a job; a job nobody runs is canceled directly."""
    job = job_ops.get_job(workspace.store, name)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"job {name!r} already ended ({job.status.value})")
    if job.status == JobStatus.QUEUED:
        _cancel_tree(workspace, job, "canceled before it started")
        return JobStatus.CANCELED
    if job.status == JobStatus.PAUSED:  # no runner holds it: cancel it here
        from keel.approvals import cancel_paused

        if cancel_paused(workspace, job.id, "canceled while waiting for approval"):
            return JobStatus.CANCELED
    job_ops.set_job_status(workspace.store, name, JobStatus.CANCEL_REQUESTED)
    return JobStatus.CANCEL_REQUESTED


def _cancel_tree(workspace: Workspace, job: Job, reason: str) -> None:
    with workspace.store.write() as conn:
        conn.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job.id)
            .values(status=JobStatus.CANCELED.value, status_reason=reason)
        )
