"""What the runner writes about jobs: step records, statuses, inputs, outputs, reuse."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

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
    """Insert a queued job for every node but the root, parents first, in one transaction."""
    with store.write() as conn:
        for node in nodes.values():
            if node is root:
                continue
            parent = nodes[node.parent] if node.parent is not None else root
            node.job_name = new_job_name()
            node.job_id = _insert_child(
                conn,
                experiment,
                parent_id=parent.job_id,
                name=node.job_name,
                display_name=node.step.display_name or node.path.rsplit("/", 1)[-1],
                kind=node.step.kind,
                step_name=node.path,
                compute=node.step.compute or "local",
                user_id=user_id,
            )


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
    with store.write() as conn:
        job_id = _insert_child(
            conn,
            experiment,
            parent_id=parent_id,
            name=name,
            display_name=display_name,
            kind=kind,
            step_name=step_name,
            compute="local",
            user_id=user_id,
        )
    return job_id, name, job_artifact_location(experiment, name)


def _insert_child(
    conn: Connection,
    experiment: Experiment,
    *,
    parent_id: int,
    name: str,
    display_name: str,
    kind: str,
    step_name: str,
    compute: str,
    user_id: str | None,
) -> int:
    values = {
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
    return int(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())


def mark_running(store: Store, node: Node, *, environment: str | None = None) -> None:
    now = now_ms()
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == node.job_id)
            .values(
                status=JobStatus.RUNNING.value,
                start_time=now,
                heartbeat_at=now,
                hostname=socket.gethostname(),
                process_id=os.getpid(),
                environment=environment,
            )
        )


def note_process(store: Store, node: Node, pid: int) -> None:
    """The step's own process group, so a cancel or rerun can find it if the runner dies."""
    with store.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == node.job_id).values(process_id=pid))


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
    environment: str | None = None


def mark_finished(store: Store, node: Node, outcome: Outcome) -> None:
    """Status, inputs and outputs of a finished node, in one transaction."""
    now = now_ms()
    with store.write() as conn:
        values: dict[str, Any] = {
            "status": outcome.status.value,
            "status_reason": outcome.reason,
            "end_time": now,
            "heartbeat_at": None,
            "exit_code": outcome.exit_code,
            "cache_key": outcome.cache_key,
            "reused_from_id": outcome.reused_from_id,
            "reuse_note": outcome.reuse_note,
        }
        if outcome.started is not None:
            values["start_time"] = outcome.started
        if outcome.environment is not None:
            values["environment"] = outcome.environment
        conn.execute(update(jobs).where(jobs.c.id == node.job_id).values(**values))
        _record_inputs(conn, node.job_id, node.inputs)
        _record_outputs(conn, node.job_id, node.outputs)


def _record_inputs(conn: Connection, job_id: int, inputs: Mapping[str, Value | None]) -> None:
    rows = [
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
    if rows:
        conn.execute(insert(job_inputs), rows)


def _record_outputs(conn: Connection, job_id: int, outputs: Mapping[str, Value]) -> None:
    rows = [
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
    if rows:
        conn.execute(insert(job_outputs), rows)


def stored_outputs(store: Store, job_id: int) -> dict[str, StoredOutput]:
    query = select(job_outputs).where(job_outputs.c.job_id == job_id)
    with store.read() as conn:
        return {
            row.name: StoredOutput(
                row.name,
                row.type,
                row.uri,
                row.digest,
                json.loads(row.value) if row.value else None,
            )
            for row in conn.execute(query)
        }


def reuse_candidates(store: Store, cache_key: str, *, limit: int = 5) -> list[tuple[int, str]]:
    """Completed jobs with this cache key, newest first."""
    query = (
        select(jobs.c.id, jobs.c.name)
        .where(jobs.c.cache_key == cache_key, jobs.c.status == JobStatus.COMPLETED.value)
        .order_by(jobs.c.end_time.desc())
        .limit(limit)
    )
    with store.read() as conn:
        return [(row.id, row.name) for row in conn.execute(query)]


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
