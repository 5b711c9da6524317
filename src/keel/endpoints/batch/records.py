"""What an invocation records: the job's own record, what it scores, each mini-batch's end.

An invocation is a Keel job (type ``batch_scoring``): ``keel job show/stream/cancel``
work on it, its log is the job's log, its progress is metrics, its input and model
are job inputs and its output a job output registered as a data asset version. Two
tables of its own complete it: ``batch_invocations`` (endpoint, deployment, input and
the settings after ``--set``, so a detached runner can run it and an endpoint list
its jobs) and ``batch_mini_batches`` (how each mini-batch ended, written in batches).
Deployment environment variables are kept there, never as params: params are shown
everywhere, and a variable may hold a secret.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import insert, select, update

from keel.clock import now_ms
from keel.endpoints.batch.engine import Outcome
from keel.endpoints.batch.specs import Settings
from keel.errors import NotFound
from keel.store import Store
from keel.store.schema import batch_invocations, batch_mini_batches, job_outputs, jobs
from keel.tracking.entities import JobStatus

JOB_TYPE = "batch_scoring"
ENDPOINT_TAG = "keel.batch_endpoint"
DEPLOYMENT_TAG = "keel.batch_deployment"
LOG_FILE = "user_logs/std_log.txt"  # where `keel job stream` reads a job's log
_FLUSH_ROWS = 512
_FLUSH_SECONDS = 0.5


@dataclass(frozen=True)
class Invocation:
    """What a batch job scores, as recorded when it was invoked."""

    job_id: int
    endpoint: str
    deployment: str
    input: str
    input_type: str | None
    settings: Settings
    created_at: int


def record_invocation(store: Store, job_id: int, invocation: dict[str, Any]) -> None:
    row = {**invocation, "job_id": job_id, "created_at": now_ms()}
    row["settings"] = json.dumps(invocation["settings"].to_json())
    with store.write() as conn:
        conn.execute(insert(batch_invocations).values(**row))


def load_invocation(store: Store, job_id: int) -> Invocation:
    with store.read() as conn:
        row = conn.execute(select(batch_invocations).where(batch_invocations.c.job_id == job_id)).first()
    if row is None:
        raise NotFound("this job is not a batch endpoint invocation", hint="see `keel job show`")
    return Invocation(
        job_id=row.job_id,
        endpoint=row.endpoint,
        deployment=row.deployment,
        input=row.input,
        input_type=row.input_type,
        settings=Settings.from_json(json.loads(row.settings)),
        created_at=row.created_at,
    )


def invocations_of(store: Store, endpoint: str, *, limit: int = 50) -> list[int]:
    """The job ids of an endpoint's invocations, newest first."""
    query = (
        select(batch_invocations.c.job_id)
        .where(batch_invocations.c.endpoint == endpoint)
        .order_by(batch_invocations.c.created_at.desc(), batch_invocations.c.job_id.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [int(job_id) for job_id in conn.execute(query).scalars()]


def mark_running(store: Store, job_id: int) -> None:
    """Running, owned by this process (its heartbeat, its pid): a dead runner is noticed."""
    now = now_ms()
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                status=JobStatus.RUNNING.value,
                start_time=now,
                heartbeat_at=now,
                hostname=socket.gethostname(),
                process_id=os.getpid(),
                compute="local",
            )
        )


def record_output(store: Store, job_id: int, *, name: str, kind: str, uri: str, digest: str) -> None:
    with store.write() as conn:
        conn.execute(
            insert(job_outputs).values(
                job_id=job_id, name=name, type=kind, uri=uri, digest=digest, value=None
            )
        )


def mini_batches(store: Store, job_id: int, *, status: str | None = None) -> list[dict[str, Any]]:
    """How the job's mini-batches ended, in order (``status``: only completed or failed ones)."""
    query = select(batch_mini_batches).where(batch_mini_batches.c.job_id == job_id)
    if status is not None:
        query = query.where(batch_mini_batches.c.status == status)
    with store.read() as conn:
        rows = conn.execute(query.order_by(batch_mini_batches.c.number)).all()
    return [
        {
            "mini_batch": row.number,
            "status": row.status,
            "attempts": row.attempts,
            "items": row.items,
            "first_item": row.first_item,
            "output_rows": row.output_rows,
            "seconds": row.seconds,
            "error": row.error,
        }
        for row in rows
    ]


class JobLog:
    """The job's log file, appended to by the driver and (through its descriptor) by workers."""

    def __init__(self, path: Path, level: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.level = level
        self._file: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    @property
    def fd(self) -> int:
        return self._file.fileno()

    def write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self._file.write(f"{stamp} {line}\n".encode("utf-8", "replace"))

    def info(self, line: str) -> None:
        if self.level in ("info", "debug"):
            self.write(line)

    def debug(self, line: str) -> None:
        if self.level == "debug":
            self.write(line)

    def close(self) -> None:
        self._file.close()


class MiniBatchRecorder:
    """Writes each mini-batch's end as it comes, a few hundred rows per transaction."""

    def __init__(self, store: Store, job_id: int) -> None:
        self._store = store
        self._job_id = job_id
        self._rows: list[dict[str, Any]] = []
        self._since = time.monotonic()

    def add(self, outcome: Outcome) -> None:
        if not self._rows:
            self._since = time.monotonic()
        batch = outcome.batch
        self._rows.append(
            {
                "job_id": self._job_id,
                "number": batch.number,
                "status": outcome.status,
                "attempts": outcome.attempts,
                "items": batch.items,
                "first_item": batch.describe()[:1000],
                "output_rows": outcome.output_rows,
                "seconds": round(outcome.seconds, 6),
                "error": None if outcome.error is None else outcome.error[:4000],
            }
        )
        if len(self._rows) >= _FLUSH_ROWS or time.monotonic() - self._since >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            rows, self._rows = self._rows, []
            with self._store.write() as conn:
                conn.execute(insert(batch_mini_batches), rows)
