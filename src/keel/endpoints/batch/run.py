"""Invoking a batch endpoint: record a job, then score its input with the deployment, in parallel.

    job = invoke(workspace, "flights-batch", input="azureml:flights-march:1")
    run_job(workspace, job.name)           # here; or start_in_background(workspace, job.name)

The job runs in this order, failing with a message that says what and where:

1. the input is made local (a data asset is checked against its manifest) and the
   model version is opened, every file's hash checked before anything is loaded;
   both are recorded as the job's inputs, so lineage leads back to them;
2. the input is split into mini-batches (:mod:`~keel.endpoints.batch.planning`); a
   table's columns are checked against the model's signature before any worker starts;
3. workers score the mini-batches (:mod:`~keel.endpoints.batch.engine`), the output
   is assembled in a staging folder as they finish;
4. on success the output is committed to the content store (one rename) and
   registered as a data asset version produced by the job; on failure the staging
   folder is removed, so nothing partial is ever published.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel.endpoints.batch import records
from keel.endpoints.batch.endpoints import BatchDeployment, deployment_for, get_deployment
from keel.endpoints.batch.engine import Outcome, Scheduler, Summary
from keel.endpoints.batch.inputs import InputData, check_input, resolve_input
from keel.endpoints.batch.planning import MiniBatch, Plan, plan
from keel.endpoints.batch.specs import Settings, override_settings
from keel.errors import Conflict, KeelError
from keel.tracking.entities import Job, JobInput, JobStatus
from keel.workspace import Workspace

_PROGRESS_SECONDS = 5.0


def invoke(
    workspace: Workspace,
    endpoint: str,
    *,
    input: str,
    deployment: str | None = None,
    input_type: str | None = None,
    overrides: Sequence[str] = (),
    job_name: str | None = None,
    experiment_name: str | None = None,
    base: Path | None = None,
) -> Job:
    """Record a queued batch scoring job; everything that can be checked now is checked first."""
    from keel.tracking.experiments import get_or_create_experiment
    from keel.tracking.jobs import create_job, get_job_by_id, log_params

    chosen = deployment_for(workspace, endpoint, deployment)
    settings = override_settings(chosen.settings, overrides)
    given = check_input(workspace, input, input_type, base=base)
    store = workspace.store
    experiment = get_or_create_experiment(store, experiment_name or endpoint)
    job = create_job(
        store,
        experiment,
        name=job_name,
        display_name=f"{endpoint}/{chosen.name}",
        job_type=records.JOB_TYPE,
        status=JobStatus.QUEUED,
        description=f"batch scoring of {given} with {chosen.model_reference}",
        tags={records.ENDPOINT_TAG: endpoint, records.DEPLOYMENT_TAG: chosen.name},
        user_id=_user(),
    )
    log_params(store, job.id, _params(chosen, settings, given))
    invocation = {
        "endpoint": endpoint,
        "deployment": chosen.name,
        "input": given,
        "input_type": input_type,
        "settings": settings,
    }
    records.record_invocation(store, job.id, invocation)
    return get_job_by_id(store, job.id)


def _params(deployment: BatchDeployment, settings: Settings, given: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "endpoint": deployment.endpoint,
        "deployment": deployment.name,
        "model": deployment.model_reference,
        "input": given,
        "mini_batch_size": settings.mini_batch_size if settings.mini_batch_size is not None else "default",
        "max_concurrency_per_instance": settings.max_concurrency_per_instance,
        "instance_count": settings.instance_count,
        "error_threshold": settings.error_threshold,
        "max_retries": settings.max_retries,
        "timeout": settings.timeout,
        "output_action": settings.output_action,
        "output_file_name": settings.output_file_name,
        "logging_level": settings.logging_level,
    }
    if deployment.scoring_script:
        params["scoring_script"] = deployment.scoring_script
    if settings.environment_variables:  # names only: a value may be a secret
        params["environment_variables"] = ", ".join(sorted(settings.environment_variables))
    return params


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def start_in_background(workspace: Workspace, name: str) -> None:
    """A detached ``python -m keel.endpoints.batch run NAME`` that outlives this process."""
    config = workspace.config
    log = config.root / "runs" / f"{name}.runner.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "keel.endpoints.batch", "run", name, "--workspace", str(config.root)]
    environment = dict(os.environ)
    environment.update(KEEL_DATABASE_URL=config.database_url, KEEL_ARTIFACTS_URL=config.artifacts_url)
    line = f"{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1 < /dev/null &"
    subprocess.run(["/bin/sh", "-c", line], env=environment, start_new_session=True, check=True)


def run_job(workspace: Workspace, name: str, *, cancel: threading.Event | None = None) -> JobStatus:
    """Run a queued invocation in this process until it ends; returns how it ended."""
    from keel.tracking.jobs import get_job

    job = get_job(workspace.store, name)
    if job.status != JobStatus.QUEUED:
        raise Conflict(f"job {name!r} is {job.status.value}; only a queued job can be started")
    invocation = records.load_invocation(workspace.store, job.id)
    return _Driver(workspace, job, invocation, cancel).run()


class _Driver:
    """Runs one invocation: the job's owner (status, heartbeat, log) and the scheduler's observer."""

    def __init__(
        self, workspace: Workspace, job: Job, invocation: records.Invocation, cancel: threading.Event | None
    ) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.job = job
        self.invocation = invocation
        self.settings = invocation.settings
        self.cancel = cancel or threading.Event()
        self.run_dir = workspace.config.root / "runs" / job.name
        self.cache = workspace.config.root / "cache"
        self.log = records.JobLog(self._log_path(), self.settings.logging_level)
        self.recorder = records.MiniBatchRecorder(self.store, job.id)
        self.plan: Plan | None = None
        self.done = 0
        self.items_done = 0
        self._last_progress = 0.0
        self._heart: Any = None
        self.started = time.monotonic()

    def _log_path(self) -> Path:
        artifacts, location = self.workspace.artifacts, self.job.artifact_location
        if artifacts.is_local and "://" not in location:
            return artifacts.local_path(f"{location}/{records.LOG_FILE}")
        return self.workspace.config.root / "runs" / f"{self.job.name}.log"

    def run(self) -> JobStatus:
        from keel.tracking.writer import MetricWriter

        records.mark_running(self.store, self.job.id)
        self._heart = MetricWriter(self.store)
        self._heart.keep_alive(self.job.id)
        try:
            status, reason = self._run()
        except KeyboardInterrupt:
            status, reason = JobStatus.CANCELED, "interrupted"
            self._finish(status, reason)
            raise
        except BaseException as exc:
            status, reason = JobStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            self._finish(status, reason)
            raise
        self._finish(status, reason)
        return status

    def _run(self) -> tuple[JobStatus, str | None]:
        try:
            return self._score()
        except KeelError as exc:
            self.log.write(f"error: {exc}")
            return JobStatus.FAILED, str(exc)

    def _finish(self, status: JobStatus, reason: str | None) -> None:
        from keel.tracking.jobs import set_job_status

        with contextlib.suppress(KeelError):
            self.recorder.flush()
        self.log.write(f"job {status.label}" + (f": {reason}" if reason else ""))
        self.log.close()
        if self.log.path.is_relative_to(self.run_dir.parent):  # artifacts elsewhere: upload the log
            with contextlib.suppress(KeelError, OSError):
                self.workspace.artifacts.put_file(
                    self.log.path, f"{self.job.artifact_location}/{records.LOG_FILE}"
                )
        if self._heart is not None:
            with contextlib.suppress(KeelError):
                self._heart.flush(timeout=30)
            self._heart.let_go(self.job.id)
            self._heart.close()
        set_job_status(self.store, self.job.name, status, reason=reason)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- scoring ---------------------------------------------------------------------------------

    def _score(self) -> tuple[JobStatus, str | None]:
        from keel.jobs.content import staging_folder

        deployment = get_deployment(self.workspace, self.invocation.endpoint, self.invocation.deployment)
        self.log.info(
            f"batch endpoint {deployment.endpoint}, deployment {deployment.name}: scoring "
            f"{self.invocation.input} with {deployment.model_reference} on {self.settings.workers} worker(s)"
        )
        model, loaded = self._open_model(deployment)
        data = resolve_input(self.workspace, self.invocation.input, self.invocation.input_type, self.cache)
        self._record_inputs(data, model)
        self.plan = plan(data, self.settings.mini_batch_size, self.run_dir, self.workspace)
        script = self._script(deployment)
        if script is None and self.plan.schema is not None:
            self._check_signature(loaded, self.plan)
        self.log.info(
            f"input {data.uri}: {self.plan.total_items:,} {self.plan.unit} in {len(self.plan.batches):,} "
            f"mini-batches (ready to score after {time.monotonic() - self.started:.2f} s)"
        )
        staging = staging_folder(self.workspace.artifacts, self.run_dir / "staging")
        try:
            summary = self._execute(script, loaded, staging)
            return self._conclude(summary, staging, model)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _open_model(self, deployment: BatchDeployment) -> tuple[Any, Any]:
        from keel.models.registry import resolve_model
        from keel.models.scoring import open_model

        model = resolve_model(self.workspace, deployment.model_reference)
        loaded = open_model(self.workspace, model, cache=self.cache)  # hashes checked before any load
        self.log.info(f"model {model.name}:{model.version} ({model.type}) verified: {model.digest}")
        return model, loaded

    def _record_inputs(self, data: InputData, model: Any) -> None:
        from keel.tracking.jobs import log_inputs

        log_inputs(
            self.store,
            self.job.id,
            [
                JobInput(name="input", type=data.type, uri=data.uri, digest=data.digest),
                JobInput(name="model", type=model.type, uri=model.reference, digest=model.digest),
            ],
        )

    def _script(self, deployment: BatchDeployment) -> Path | None:
        from keel.endpoints.batch.endpoints import check_scoring_script
        from keel.jobs.snapshot import materialize

        if deployment.code_digest is None or deployment.scoring_script is None:
            return None
        code = self.run_dir / "code"
        materialize(deployment.code_digest, self.workspace.artifacts, code, self.cache)
        script = code / deployment.scoring_script
        check_scoring_script(script)
        return script

    def _check_signature(self, loaded: Any, found: Plan) -> None:
        """A table whose columns do not fit the signature is refused before any worker starts."""
        loaded.validate(found.schema.empty_table().to_pandas())

    def _execute(self, script: Path | None, loaded: Any, staging: Path) -> Summary:
        from keel.endpoints.batch.output import Assembler
        from keel.endpoints.batch.pool import LocalProcesses
        from keel.endpoints.batch.preload import preload
        from keel.endpoints.batch.worker import Scoring, serve

        assert self.plan is not None
        settings = self.settings
        assembler = None
        if settings.output_action == "append_row":
            assembler = Assembler(staging, settings.output_file_name, len(self.plan.batches))
        parts = self.run_dir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        preload(script=script, model_dir=loaded.directory)
        environment = {
            **settings.environment_variables,
            "AZUREML_BI_OUTPUT_PATH": str(staging),
            "AZUREML_RUN_ID": self.job.name,
            "KEEL_JOB_NAME": self.job.name,
        }
        scoring = Scoring(
            model_dir=loaded.directory,
            parts=parts,
            part_format=assembler.part_format if assembler is not None else "arrow",
            output_action=settings.output_action,
            script=script,
            model=None if script is not None else loaded,
            environment=environment,
            logging_level=settings.logging_level,
            threads=_threads_per_worker(settings.workers),
        )
        log_fd = self.log.fd

        def main(connection: Any, slot: int) -> None:
            serve(connection, scoring, slot, log_fd)

        pool = LocalProcesses(settings.workers, main)
        summary = Scheduler(self.plan, settings, pool, self, assembler).run()
        self.recorder.flush()
        self._metrics(summary, final=True)
        return summary

    def _conclude(self, summary: Summary, staging: Path, model: Any) -> tuple[JobStatus, str | None]:
        assert self.plan is not None
        unit = self.plan.unit
        self.log.write(
            f"{summary.completed:,} mini-batches completed ({summary.items_completed:,} {unit}), "
            f"{summary.failed:,} failed ({summary.items_failed:,} {unit}) in {summary.seconds:.1f} s"
        )
        if summary.status == "canceled":
            return JobStatus.CANCELED, summary.reason
        if summary.status != "completed":
            return JobStatus.FAILED, summary.reason
        from keel.endpoints.batch.publish import OUTPUT_NAME, publish

        started = time.monotonic()
        published = publish(self.workspace, self.job, self.invocation, summary, staging)
        if published is not None:
            seconds = time.monotonic() - started
            self.log.write(f"output {OUTPUT_NAME}: registered as data asset {published} in {seconds:.2f} s")
        if summary.failed:
            return JobStatus.COMPLETED, (
                f"{summary.failed} mini-batch(es) failed and were left out "
                f"({summary.items_failed} {unit}; error_threshold {self.settings.error_threshold})"
            )
        return JobStatus.COMPLETED, None

    # -- the scheduler's observer ------------------------------------------------------------------

    def attempt_failed(self, batch: MiniBatch, attempt: int, error: str, *, retrying: bool) -> None:
        what = "retrying" if retrying else "giving up"
        self.log.write(
            f"mini-batch {batch.number} ({batch.describe()}) attempt {attempt} failed: {error}; {what}"
        )

    def ended(self, outcome: Outcome) -> None:
        self.recorder.add(outcome)
        self.done += 1
        if outcome.status == "completed":
            self.items_done += outcome.batch.items
            self.log.debug(
                f"mini-batch {outcome.batch.number} completed: {outcome.output_rows:,} rows out "
                f"in {outcome.seconds:.2f} s"
            )
        self._progress()

    def stop_requested(self) -> str | None:
        from keel.jobs.records import job_status

        if self.cancel.is_set():
            return "canceled"
        if job_status(self.store, self.job.id) == JobStatus.CANCEL_REQUESTED:
            return "canceled on request"
        return None

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < _PROGRESS_SECONDS:
            return
        self._last_progress = now
        assert self.plan is not None
        total = len(self.plan.batches)
        self.log.info(
            f"progress: {self.done:,}/{total:,} mini-batches, {self.items_done:,} {self.plan.unit} scored"
        )
        self._metrics(None, final=False)

    def _metrics(self, summary: Summary | None, *, final: bool) -> None:
        from keel.clock import now_ms

        assert self.plan is not None
        step, stamp = self.done, now_ms()
        unit = self.plan.unit
        values = {"mini_batches_done": float(self.done), f"{unit}_scored": float(self.items_done)}
        if final and summary is not None:
            values.update(
                {
                    "mini_batches_completed": float(summary.completed),
                    "mini_batches_failed": float(summary.failed),
                    f"{unit}_failed": float(summary.items_failed),
                    "scoring_seconds": summary.seconds,
                }
            )
            if summary.seconds > 0:
                values[f"{unit}_per_second"] = summary.items_completed / summary.seconds
        self._heart.put_many([(self.job.id, key, value, stamp, step) for key, value in values.items()])


def _threads_per_worker(workers: int) -> int | None:
    """One worker keeps every core for its libraries; several share them out."""
    if workers <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // workers)
