"""Jobs as tracking records: create, read, update status, params, tags, heartbeats."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import experiments, job_inputs, job_params, job_tags, jobs
from keel.store.upsert import upsert
from keel.tracking.entities import (
    LIVE_STATUSES,
    Experiment,
    Job,
    JobInput,
    JobStatus,
    LifecycleStage,
)
from keel.tracking.metrics import summaries_for
from keel.tracking.names import new_job_name
from keel.tracking.validation import check_display_name, check_name, stringify_mapping

HEARTBEAT_INTERVAL_SECONDS = 5.0
# A dead local process is noticed this long after its last heartbeat at the latest.
_LOCAL_GRACE_MS = 2_000


def create_job(
    store: Store,
    experiment: Experiment,
    *,
    name: str | None = None,
    display_name: str | None = None,
    parent_id: int | None = None,
    job_type: str = "run",
    status: JobStatus = JobStatus.RUNNING,
    user_id: str | None = None,
    start_time: int | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    heartbeat: bool = False,
) -> Job:
    """Record a new job; with ``heartbeat`` this process promises to keep it alive."""
    job_name = check_name(name, "job") if name is not None else new_job_name()
    if display_name is not None:
        check_display_name(display_name, "display name")
    clean_tags = stringify_mapping(tags, "tag")
    now = now_ms()
    values: dict[str, Any] = {
        "name": job_name,
        "display_name": display_name,
        "experiment_id": experiment.id,
        "parent_id": parent_id,
        "type": job_type,
        "status": status.value,
        "description": description,
        "user_id": user_id,
        "created_at": now,
        "start_time": start_time if start_time is not None else now,
        "lifecycle_stage": LifecycleStage.ACTIVE.value,
        "artifact_location": job_artifact_location(experiment, job_name),
    }
    if heartbeat:
        values.update(heartbeat_at=now, hostname=socket.gethostname(), process_id=os.getpid())
    try:
        with store.write() as conn:
            job_id = conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one()
            _write_tags(conn, job_id, clean_tags)
    except IntegrityError:
        raise Conflict(
            f"a job named {job_name!r} already exists",
            hint="job names are unique; omit the name to get a fresh one",
        ) from None
    return get_job_by_id(store, job_id)


def job_artifact_location(experiment: Experiment, job_name: str) -> str:
    """Relative to the workspace artifact root unless the experiment names its own root."""
    if experiment.artifact_location:
        return f"{experiment.artifact_location.rstrip('/')}/{job_name}/artifacts"
    return f"{experiment.id}/{job_name}/artifacts"


def get_job(store: Store, name: str) -> Job:
    with store.read() as conn:
        found = load_jobs(conn, [job_id_for(conn, name)])
    return found[0]


def get_job_by_id(store: Store, job_id: int) -> Job:
    with store.read() as conn:
        found = load_jobs(conn, [job_id])
    if not found:
        raise NotFound(f"no job with id {job_id}")
    return found[0]


def job_id_for(conn: Connection, name: str) -> int:
    if not isinstance(name, str):
        raise InvalidInput(f"job name must be a string, got {name!r}")
    row = conn.execute(select(jobs.c.id).where(jobs.c.name == name)).first()
    if row is None:
        raise NotFound(f"no job named {name!r}", hint="see `keel job list`")
    return int(row.id)


def resolve_job_id(store: Store, name: str) -> int:
    with store.read() as conn:
        return job_id_for(conn, name)


def set_job_status(
    store: Store,
    name: str,
    status: JobStatus,
    *,
    reason: str | None = None,
    end_time: int | None = None,
) -> None:
    """Move a job to ``status``; terminal states stamp the end time."""
    values: dict[str, Any] = {"status": status.value}
    if reason is not None:
        values["status_reason"] = reason
    if status.is_terminal:
        values["end_time"] = end_time if end_time is not None else now_ms()
        values["heartbeat_at"] = None
    elif end_time is not None:
        values["end_time"] = end_time
    with store.write() as conn:
        job_id = job_id_for(conn, name)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def update_job(
    store: Store,
    name: str,
    *,
    status: JobStatus | None = None,
    end_time: int | None = None,
    display_name: str | None = None,
) -> Job:
    """The MLflow update-run verb: status, end time and display name, each optional."""
    if display_name is not None:
        check_display_name(display_name, "display name")
        with store.write() as conn:
            job_id = job_id_for(conn, name)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(display_name=display_name))
    if status is not None:
        set_job_status(store, name, status, end_time=end_time)
    elif end_time is not None:
        with store.write() as conn:
            conn.execute(update(jobs).where(jobs.c.name == name).values(end_time=end_time))
    return get_job(store, name)


def set_job_lifecycle(store: Store, name: str, stage: LifecycleStage) -> None:
    with store.write() as conn:
        job_id = job_id_for(conn, name)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(lifecycle_stage=stage.value))


def log_params(store: Store, job_id: int, params: Mapping[str, Any]) -> None:
    """Record params; logging the same value twice is fine, a different one is refused."""
    clean = stringify_mapping(params, "param")
    if not clean:
        return
    with store.write() as conn:
        query = select(job_params.c.key, job_params.c.value).where(
            job_params.c.job_id == job_id, job_params.c.key.in_(list(clean))
        )
        existing = {key: value for key, value in conn.execute(query)}
        for key, value in clean.items():
            if key in existing and existing[key] != value:
                raise InvalidInput(
                    f"param {key!r} was already logged with value {existing[key]!r:.80}; "
                    f"it cannot change to {value!r:.80}",
                    hint="params are immutable; log changing values as metrics or tags",
                )
        new_rows = [
            {"job_id": job_id, "key": key, "value": value}
            for key, value in clean.items()
            if key not in existing
        ]
        if new_rows:
            conn.execute(insert(job_params), new_rows)


def set_tags(store: Store, job_id: int, tags: Mapping[str, Any]) -> None:
    clean = stringify_mapping(tags, "tag")
    with store.write() as conn:
        _write_tags(conn, job_id, clean)


def delete_tag(store: Store, job_id: int, key: str) -> None:
    with store.write() as conn:
        gone = conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id, job_tags.c.key == key))
    if gone.rowcount == 0:
        raise NotFound(f"job has no tag {key!r}")


def log_inputs(store: Store, job_id: int, inputs: Sequence[JobInput]) -> None:
    """Record what a job read; the same (name, digest) twice is kept once."""
    rows = [
        {
            "job_id": job_id,
            "name": item.name,
            "type": item.type,
            "uri": item.uri,
            "digest": item.digest,
            "source_type": item.source_type,
            "schema": item.schema,
            "profile": item.profile,
            "tags": _encode_tags(item.tags),
        }
        for item in inputs
    ]
    with store.write() as conn:
        upsert(conn, job_inputs, rows, key=["job_id", "name", "digest"], update=[])


def heartbeat(store: Store, job_ids: Iterable[int]) -> None:
    ids = list(job_ids)
    if not ids:
        return
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(ids), jobs.c.status.in_([s.value for s in LIVE_STATUSES]))
            .values(heartbeat_at=now_ms())
        )


def reap_dead_jobs(store: Store, *, timeout_seconds: float, now: int | None = None) -> list[str]:
    """Mark failed the live jobs whose owning process stopped beating; returns their names.

    A job is dead when its last heartbeat is older than the timeout, or, on the
    host that ran it, as soon as its process is gone.
    """
    current = now if now is not None else now_ms()
    live = [s.value for s in LIVE_STATUSES]
    with store.read() as conn:
        candidates = conn.execute(
            select(jobs.c.id, jobs.c.name, jobs.c.heartbeat_at, jobs.c.hostname, jobs.c.process_id).where(
                jobs.c.status.in_(live), jobs.c.heartbeat_at.is_not(None)
            )
        ).all()
    host = socket.gethostname()
    dead = [row for row in candidates if _is_dead(row, current, timeout_seconds, host)]
    if not dead:
        return []
    with store.write() as conn:
        for row in dead:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status.in_(live))
                .values(
                    status=JobStatus.FAILED.value,
                    end_time=row.heartbeat_at,
                    heartbeat_at=None,
                    status_reason="the process running this job stopped without ending it "
                    f"(no heartbeat since {row.heartbeat_at} ms)",
                )
            )
        _end_descendants(conn, [row.id for row in dead])
    return [row.name for row in dead]


def _end_descendants(conn: Connection, parent_ids: list[int]) -> None:
    """The unfinished steps of a dead job will never be finished by it: fail them too."""
    unfinished = [s.value for s in JobStatus if not s.is_terminal]
    frontier = parent_ids
    while frontier:
        rows = conn.execute(
            select(jobs.c.id).where(jobs.c.parent_id.in_(frontier), jobs.c.status.in_(unfinished))
        ).all()
        frontier = [row.id for row in rows]
        if frontier:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(frontier))
                .values(
                    status=JobStatus.FAILED.value,
                    end_time=now_ms(),
                    heartbeat_at=None,
                    status_reason="the job it belongs to stopped without ending it",
                )
            )


def _is_dead(row: Any, now: int, timeout_seconds: float, host: str) -> bool:
    if row.heartbeat_at < now - timeout_seconds * 1000:
        return True
    if row.hostname == host and row.process_id and row.heartbeat_at < now - _LOCAL_GRACE_MS:
        return not process_alive(int(row.process_id))
    return False


def process_alive(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) process on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def load_jobs(conn: Connection, ids: Sequence[int]) -> list[Job]:
    """Full job records, in the order of ``ids``, with params, tags, metrics and inputs."""
    if not ids:
        return []
    parent = jobs.alias("parent")
    source = jobs.alias("source")
    query = (
        select(
            jobs,
            experiments.c.name.label("experiment_name"),
            parent.c.name.label("pname"),
            source.c.name.label("reused_from"),
        )
        .join(experiments, experiments.c.id == jobs.c.experiment_id)
        .outerjoin(parent, parent.c.id == jobs.c.parent_id)
        .outerjoin(source, source.c.id == jobs.c.reused_from_id)
        .where(jobs.c.id.in_(ids))
    )
    rows = {row.id: row for row in conn.execute(query)}
    params = _key_values(conn, job_params, ids)
    tags = _key_values(conn, job_tags, ids)
    summaries = summaries_for(conn, ids)
    inputs = _inputs_for(conn, ids)
    return [
        _job(rows[i], params.get(i, {}), tags.get(i, {}), summaries.get(i, {}), inputs.get(i, []))
        for i in ids
        if i in rows
    ]


def _job(
    row: Row[Any],
    params: dict[str, str],
    tags: dict[str, str],
    metrics: dict[str, Any],
    inputs: list[JobInput],
) -> Job:
    return Job(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        experiment_id=row.experiment_id,
        experiment_name=row.experiment_name,
        parent_name=row.pname,
        type=row.type,
        status=JobStatus(row.status),
        status_reason=row.status_reason,
        description=row.description,
        user_id=row.user_id,
        created_at=row.created_at,
        start_time=row.start_time,
        end_time=row.end_time,
        heartbeat_at=row.heartbeat_at,
        lifecycle_stage=LifecycleStage(row.lifecycle_stage),
        artifact_location=row.artifact_location,
        params=params,
        tags=tags,
        metrics=metrics,
        inputs=inputs,
        step_name=row.step_name,
        reused_from=row.reused_from,
        reuse_note=row.reuse_note,
        exit_code=row.exit_code,
        environment=row.environment,
        compute=row.compute,
    )


def _key_values(conn: Connection, table: Any, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    query = select(table.c.job_id, table.c.key, table.c.value).where(table.c.job_id.in_(ids))
    for job_id, key, value in conn.execute(query):
        found.setdefault(job_id, {})[key] = value
    return found


def _inputs_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[JobInput]]:
    found: dict[int, list[JobInput]] = {}
    query = select(job_inputs).where(job_inputs.c.job_id.in_(ids)).order_by(job_inputs.c.id)
    for row in conn.execute(query):
        found.setdefault(row.job_id, []).append(
            JobInput(
                name=row.name,
                type=row.type,
                uri=row.uri,
                digest=row.digest,
                source_type=row.source_type,
                schema=row.schema,
                profile=row.profile,
                tags=_decode_tags(row.tags),
                value=row.value,
            )
        )
    return found


def _write_tags(conn: Connection, job_id: int, tags: dict[str, str]) -> None:
    rows = [{"job_id": job_id, "key": key, "value": value} for key, value in tags.items()]
    upsert(conn, job_tags, rows, key=["job_id", "key"])


def _encode_tags(tags: Mapping[str, str]) -> str | None:
    import orjson

    return orjson.dumps(dict(tags)).decode() if tags else None


def _decode_tags(raw: str | None) -> dict[str, str]:
    import orjson

    return dict(orjson.loads(raw)) if raw else {}
