"""A copy as a job: its record (type ``data_transfer``), params, log, counters and artifacts.

A ``keel data copy`` run is a job like any other: ``keel job list/show`` show it,
``keel job stream`` follows its log. Its request is a param, so ``--resume`` runs
exactly what was asked. Its counters are metrics logged once per attempt (step 0
for the first run, 1 for the first resume…), so the history shows what each
attempt moved. Its manifest (every file at its final name, with size, stamp and
SHA-256) and its skip log are artifacts under ``copy/``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import update

from keel.artifacts import ArtifactStore
from keel.clock import now_ms
from keel.data.copy.options import CopyRequest
from keel.errors import Conflict, InvalidInput
from keel.store.schema import jobs
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace

JOB_TYPE = "data_transfer"
REQUEST_PARAM = "copy.request"
ATTEMPT_TAG = "copy.attempt"  # 0 for the first run, one more per resume: the step of its metrics
LOG_FILE = "user_logs/std_log.txt"  # where `keel job stream` reads a job's log
MANIFEST = "copy/manifest.jsonl"
SKIP_LOG = "copy/skipped.jsonl"


@dataclass(frozen=True)
class CopyJob:
    """The job a copy runs as; ``attempt`` is 0 for the first run, then one more per resume."""

    id: int
    name: str
    artifact_location: str
    attempt: int = 0
    started_ms: int = 0  # when the job first started: files written since may be adopted on resume


def start_job(workspace: Workspace, request: CopyRequest, *, experiment: str | None = None) -> CopyJob:
    """Record a running copy job (this process keeps its heartbeat)."""
    from keel.tracking.experiments import get_or_create_experiment
    from keel.tracking.jobs import create_job, log_params

    store = workspace.store
    found = get_or_create_experiment(store, experiment)
    sources = ", ".join(request.sources)
    job = create_job(
        store,
        found,
        job_type=JOB_TYPE,
        display_name=_clip(f"copy {sources} → {request.destination}"),
        heartbeat=True,
        tags={ATTEMPT_TAG: 0},
    )
    options = request.options
    log_params(
        store,
        job.id,
        {
            "source": _clip(sources, 6000),
            "destination": _clip(request.destination, 6000),
            "mode": options.mode,
            "verify": options.verify,
            REQUEST_PARAM: request.to_json(),
        },
    )
    return CopyJob(job.id, job.name, job.artifact_location, 0, job.start_time or now_ms())


def reopen_job(workspace: Workspace, name: str) -> tuple[CopyJob, CopyRequest]:
    """A stopped copy job, running again for a resume; Conflict while it is still running."""
    from keel.tracking.jobs import get_job, reap_dead_jobs, set_tags

    store = workspace.store
    reap_dead_jobs(store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    job = get_job(store, name)
    if job.type != JOB_TYPE or REQUEST_PARAM not in job.params:
        raise InvalidInput(f"job {name!r} is not a copy made by `keel data copy`", hint="see `keel job show`")
    if job.status in (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.CANCEL_REQUESTED) and _alive(
        store, job.id
    ):
        raise Conflict(f"copy job {name} is still running", hint="wait for it, or cancel it first")
    if job.status == JobStatus.COMPLETED:
        raise Conflict(f"copy job {name} already completed; there is nothing to resume")
    attempt = int(job.tags.get(ATTEMPT_TAG, "0")) + 1
    set_tags(store, job.id, {ATTEMPT_TAG: attempt})
    now = now_ms()
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(
                status=JobStatus.RUNNING.value,
                status_reason=None,
                end_time=None,
                heartbeat_at=now,
                hostname=socket.gethostname(),
                process_id=os.getpid(),
            )
        )
    request = CopyRequest.from_json(job.params[REQUEST_PARAM])
    return CopyJob(job.id, job.name, job.artifact_location, attempt, job.start_time or now), request


def _alive(store: Any, job_id: int) -> bool:
    """Whether the process running the job is still there (the reaper waits for a missed
    heartbeat; a resume on the same host can ask the kernel at once)."""
    from sqlalchemy import select

    from keel.tracking.jobs import process_alive

    with store.read() as conn:
        row = conn.execute(select(jobs.c.hostname, jobs.c.process_id).where(jobs.c.id == job_id)).one()
    if row.hostname != socket.gethostname() or not row.process_id:
        return True
    return process_alive(int(row.process_id))


def record_counters(workspace: Workspace, job: CopyJob, counters: Mapping[str, float]) -> None:
    from keel.tracking.metrics import write_metrics

    stamp = now_ms()
    write_metrics(
        workspace.store, [(job.id, key, float(v), stamp, job.attempt) for key, v in counters.items()]
    )


def finish_job(workspace: Workspace, job: CopyJob, status: JobStatus, reason: str | None) -> None:
    from keel.tracking.jobs import set_job_status

    set_job_status(workspace.store, job.name, status, reason=reason)


def job_store(workspace: Workspace, location: str) -> tuple[ArtifactStore, str]:
    """The artifact store and prefix of a job's artifacts (an experiment may name its own root)."""
    if "://" in location:
        return ArtifactStore(location), ""
    return workspace.artifacts, location


def write_artifact(workspace: Workspace, job: CopyJob, relative: str, data: bytes) -> None:
    store, prefix = job_store(workspace, job.artifact_location)
    store.write_bytes(f"{prefix}/{relative}" if prefix else relative, data)


def write_lines(workspace: Workspace, job: CopyJob, relative: str, rows: list[dict[str, Any]]) -> None:
    write_artifact(
        workspace, job, relative, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    )


class JobLog:
    """The job's log: appended as it happens when artifacts are local, else uploaded at the end."""

    def __init__(self, workspace: Workspace, job: CopyJob) -> None:
        self._store, prefix = job_store(workspace, job.artifact_location)
        self._relative = f"{prefix}/{LOG_FILE}" if prefix else LOG_FILE
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._file: IO[str] | None = None
        if self._store.is_local:
            path = self._store.local_path(self._relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed in close())

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{stamp} {message}\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
            else:
                self._lines.append(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                return
            if self._lines:
                previous = (
                    self._store.read_bytes(self._relative) if self._store.exists(self._relative) else b""
                )
                self._store.write_bytes(self._relative, previous + "".join(self._lines).encode())
                self._lines = []


def _clip(text: str, limit: int = 256) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
