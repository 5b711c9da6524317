"""What the runner writes about jobs: step records, statuses, inputs, outputs, reuse."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Text, bindparam, func, insert, select, update

from keel.clock import now_ms
from keel.jobs.graph import Node, Value
from keel.store import Store
from keel.store.schema import job_inputs, job_outputs, jobs
from keel.tracking.entities import Experiment, JobStatus
from keel.tracking.jobs import job_artifact_location
from keel.tracking.names import new_job_name


@dataclass(frozen=True)
class StoredOutput:
    name: str
    type: str
    uri: str | None
    digest: str | None
    value: Any


def create_step_jobs(
    store: Store, experiment: Experiment, nodes: Mapping[str, Node], root: Node, *, user_id: str | None = None
) -> None:
    """Insert a queued job for every node but the root, a level of nesting per statement."""
    pending = [node for node in nodes.values() if node is not root]
    with store.write() as conn:
        while pending:
            level = [node for node in pending if nodes[node.parent or ""].job_id]
            for node in level:
                node.job_name = new_job_name()
            rows = [
                _child_row(
                    experiment,
                    parent_id=nodes[node.parent or ""].job_id,
                    name=node.job_name,
                    display_name=node.step.display_name or node.path.rsplit("/", 1)[-1],
                    kind=node.step.kind,
                    step_name=node.path,
                    compute=node.step.compute or "local",
                    user_id=user_id,
                )
                for node in level
            ]
            ids = conn.execute(_INSERT_JOB_IDS, rows).scalars().all()
            for node, job_id in zip(level, ids, strict=True):
                node.job_id = job_id
            pending = [node for node in pending if not node.job_id]


_INSERT_JOB_IDS = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)


def create_child(
    store: Store,
    experiment: Experiment,
    *,
    parent_id: int,
    name: str,
    display_name: str,
    kind: str,
    step_name: str,
    user_id: str | None,
) -> tuple[int, str, str]:
    """One more queued child job (a sweep trial); returns (id, name, artifact location)."""
    row = _child_row(
        experiment,
        parent_id=parent_id,
        name=name,
        display_name=display_name,
        kind=kind,
        step_name=step_name,
        compute="local",
        user_id=user_id,
    )
    with store.write() as conn:
        job_id = int(conn.execute(_INSERT_JOB_IDS, [row]).scalar_one())
    return job_id, name, row["artifact_location"]


def _child_row(
    experiment: Experiment,
    *,
    parent_id: int,
    name: str,
    display_name: str,
    kind: str,
    step_name: str,
    compute: str,
    user_id: str | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": display_name,
        "experiment_id": experiment.id,
        "parent_id": parent_id,
        "type": kind,
        "status": JobStatus.QUEUED.value,
        "created_at": now_ms(),
        "lifecycle_stage": "active",
        "artifact_location": job_artifact_location(experiment, name),
        "step_name": step_name,
        "compute": compute,
        "user_id": user_id,
    }


def mark_running(
    store: Store, node: Node, *, environment: str | None = None, keep_start: bool = False
) -> None:
    """``keep_start``: a pipeline resumed after a pause keeps the time it first started."""
    now = now_ms()
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == node.job_id)
            .values(
                status=JobStatus.RUNNING.value,
                start_time=func.coalesce(jobs.c.start_time, now) if keep_start else now,
                heartbeat_at=now,
                hostname=socket.gethostname(),
                process_id=os.getpid(),
                environment=environment,
            )
        )


PROCESS_TAG = "keel.process"


def note_process(store: Store, node: Node, pid: int) -> None:
    """The step's own process group (``host:pid``), so a rerun can stop it if the runner dies.

    Kept apart from ``process_id``, which names the runner: the runner owns the job's
    heartbeat, and the step's process ending does not mean the job has ended.
    """
    from keel.tracking.jobs import set_tags

    set_tags(store, node.job_id, {PROCESS_TAG: f"{socket.gethostname()}:{pid}"})


@dataclass(frozen=True)
class Outcome:
    """How a node ended, as recorded."""

    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    cache_key: str | None = None
    reused_from_id: int | None = None
    reuse_note: str | None = None
    started: int | None = None
    ended: int | None = None
    environment: str | None = None


# Statements built once: for a trivial step, building SQLAlchemy statements cost more
# than running them, and the runner's per-step overhead is a promise (milliseconds).
_FINISH = (
    update(jobs)
    .where(jobs.c.id == bindparam("job"))
    .values(
        status=bindparam("status"),
        status_reason=bindparam("reason"),
        start_time=func.coalesce(bindparam("started", type_=BigInteger), jobs.c.start_time),
        end_time=bindparam("ended"),
        heartbeat_at=None,
        exit_code=bindparam("exit_code"),
        cache_key=bindparam("cache_key"),
        reused_from_id=bindparam("reused_from"),
        reuse_note=bindparam("note"),
        environment=func.coalesce(bindparam("environment", type_=Text), jobs.c.environment),
    )
)
_INSERT_INPUTS = insert(job_inputs)
_INSERT_OUTPUTS = insert(job_outputs)
_OUTPUTS_OF = select(job_outputs).where(job_outputs.c.job_id == bindparam("job"))
_CANDIDATES = (
    select(jobs.c.id, jobs.c.name)
    .where(jobs.c.cache_key == bindparam("key"), jobs.c.status == JobStatus.COMPLETED.value)
    .order_by(jobs.c.end_time.desc())
    .limit(bindparam("limit"))
)


def mark_finished(store: Store, node: Node, outcome: Outcome) -> None:
    """Status, inputs and outputs of a finished node, in one transaction."""
    mark_all_finished(store, [(node, outcome)])


def mark_all_finished(store: Store, finished: Sequence[tuple[Node, Outcome]]) -> None:
    """Several finished nodes in one transaction (the runner batches quick steps)."""
    if not finished:
        return
    ended = now_ms()
    updates = [
        {
            "job": node.job_id,
            "status": outcome.status.value,
            "reason": outcome.reason,
            "started": outcome.started,
            "ended": outcome.ended or ended,
            "exit_code": outcome.exit_code,
            "cache_key": outcome.cache_key,
            "reused_from": outcome.reused_from_id,
            "note": outcome.reuse_note,
            "environment": outcome.environment,
        }
        for node, outcome in finished
    ]
    inputs = [row for node, _ in finished for row in _input_rows(node.job_id, node.inputs)]
    outputs = [row for node, _ in finished for row in _output_rows(node.job_id, node.outputs)]
    with store.write() as conn:
        conn.execute(_FINISH, updates)
        if inputs:
            conn.execute(_INSERT_INPUTS, inputs)
        if outputs:
            conn.execute(_INSERT_OUTPUTS, outputs)


def _input_rows(job_id: int, inputs: Mapping[str, Value | None]) -> list[dict[str, Any]]:
    return [
        {
            "job_id": job_id,
            "name": name,
            "type": value.type,
            "uri": value.uri,
            "digest": value.digest,
            "value": None if value.is_data else json.dumps(value.literal),
        }
        for name, value in inputs.items()
        if value is not None
    ]


def _output_rows(job_id: int, outputs: Mapping[str, Value]) -> list[dict[str, Any]]:
    return [
        {
            "job_id": job_id,
            "name": name,
            "type": value.type,
            "uri": value.uri if value.is_data else None,
            "digest": value.digest,
            "value": None if value.is_data else json.dumps(value.literal),
        }
        for name, value in outputs.items()
    ]


def stored_outputs(store: Store, job_id: int) -> dict[str, StoredOutput]:
    with store.read() as conn:
        return {
            row.name: StoredOutput(
                row.name,
                row.type,
                row.uri,
                row.digest,
                json.loads(row.value) if row.value else None,
            )
            for row in conn.execute(_OUTPUTS_OF, {"job": job_id})
        }


def reuse_candidates(store: Store, cache_key: str, *, limit: int = 5) -> list[tuple[int, str]]:
    """Completed jobs with this cache key, newest first."""
    with store.read() as conn:
        return [(row.id, row.name) for row in conn.execute(_CANDIDATES, {"key": cache_key, "limit": limit})]


def steps_of(store: Store, root_id: int) -> dict[str, tuple[int, str, JobStatus]]:
    """A finished run's steps by path: (job id, job name, status), for reruns."""
    found: dict[str, tuple[int, str, JobStatus]] = {}
    frontier = [root_id]
    with store.read() as conn:
        while frontier:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.name, jobs.c.status, jobs.c.step_name).where(
                    jobs.c.parent_id.in_(frontier)
                )
            ).all()
            frontier = [row.id for row in rows]
            for row in rows:
                if row.step_name is not None:
                    found[row.step_name] = (row.id, row.name, JobStatus(row.status))
    return found


def claim_paused(store: Store, job_id: int) -> bool:
    """Take a paused job to run it again: paused → running, true for exactly one claimer."""
    now = now_ms()
    with store.write() as conn:
        claimed = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == JobStatus.PAUSED.value)
            .values(
                status=JobStatus.RUNNING.value,
                status_reason=None,
                heartbeat_at=now,
                hostname=socket.gethostname(),
                process_id=os.getpid(),
            )
        ).rowcount
    return bool(claimed)


def job_status(store: Store, job_id: int) -> JobStatus:
    with store.read() as conn:
        return JobStatus(conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one())


def job_spec(store: Store, name: str) -> tuple[int, str | None]:
    with store.read() as conn:
        row = conn.execute(select(jobs.c.id, jobs.c.spec).where(jobs.c.name == name)).first()
    if row is None:
        from keel.errors import NotFound

        raise NotFound(f"no job named {name!r}", hint="see `keel job list`")
    return row.id, row.spec
