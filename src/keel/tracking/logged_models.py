"""Logged models: what MLflow 3 records when a run saves a model (``log_model``, autolog).

A logged model is a record of its own beside the job that produced it: an id
(``m-<hex>``), a name, its experiment, a status that moves from pending to ready (or
failed) once its files are uploaded, and the params, tags and metrics attached to it.
Its files live under ``<experiment>/models/<id>/artifacts``, beside the experiment's
jobs. Params, tags and metrics are few and always read whole, so each is one JSON
document on the row; changes read and rewrite it inside one write transaction.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, insert, select, update

from keel.clock import now_ms
from keel.errors import InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import jobs, logged_models, metric_keys, metrics
from keel.tracking.entities import Experiment, LifecycleStage
from keel.tracking.filters import Field, matches, parse_filter, parse_order_by, sort_records
from keel.tracking.metrics import PendingPoint, write_metrics
from keel.tracking.names import new_job_name
from keel.tracking.search import decode_page_token, encode_page_token
from keel.tracking.validation import check_display_name, stringify_mapping

MAX_RESULTS_LIMIT = 50_000
_DEFAULT_ORDER = "creation_timestamp DESC, model_id ASC"


class ModelStatus(StrEnum):
    """pending while its files upload, then ready or failed."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelMetric:
    """A metric measured on a logged model (often a run's metric, linked to the model)."""

    model_id: str
    key: str
    value: float
    step: int
    timestamp: int
    job_name: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True)
class LoggedModel:
    id: str
    name: str
    experiment_id: int
    job_name: str | None
    model_type: str | None
    status: ModelStatus
    status_message: str | None
    artifact_location: str
    lifecycle_stage: LifecycleStage
    created_at: int
    updated_at: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetric] = field(default_factory=list)


@dataclass(frozen=True)
class ModelPage:
    models: list[LoggedModel]
    next_page_token: str | None


# -- writing -----------------------------------------------------------------------------


def create_logged_model(
    store: Store,
    experiment: Experiment,
    *,
    name: str | None = None,
    job_id: int | None = None,
    model_type: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> LoggedModel:
    """Record a pending model in ``experiment``, produced by job ``job_id`` if given."""
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidInput(f"experiment {experiment.name!r} is deleted; restore it first")
    model_name = check_display_name(name, "model name") if name else new_job_name()
    model_id = f"m-{uuid.uuid4().hex}"
    now = now_ms()
    with store.write() as conn:
        conn.execute(
            insert(logged_models).values(
                id=model_id,
                name=model_name,
                experiment_id=experiment.id,
                job_id=job_id,
                model_type=model_type,
                status=ModelStatus.PENDING.value,
                artifact_location=model_artifact_location(experiment, model_id),
                lifecycle_stage=LifecycleStage.ACTIVE.value,
                created_at=now,
                updated_at=now,
                params=_dump_mapping(stringify_mapping(params, "param")),
                tags=_dump_mapping(stringify_mapping(tags, "tag")),
            )
        )
    return get_logged_model(store, model_id)


def model_artifact_location(experiment: Experiment, model_id: str) -> str:
    """Beside the experiment's jobs: relative to the workspace root unless it has its own."""
    if experiment.artifact_location:
        return f"{experiment.artifact_location.rstrip('/')}/models/{model_id}/artifacts"
    return f"{experiment.id}/models/{model_id}/artifacts"


def finalize_logged_model(
    store: Store, model_id: str, status: ModelStatus, *, message: str | None = None
) -> LoggedModel:
    """Record that the model's upload ended (ready) or broke off (failed)."""
    with store.write() as conn:
        _lock(conn, model_id)
        conn.execute(
            update(logged_models)
            .where(logged_models.c.id == model_id)
            .values(status=status.value, status_message=message, updated_at=now_ms())
        )
    return get_logged_model(store, model_id)


def delete_logged_model(store: Store, model_id: str) -> None:
    """Mark the model deleted; its files stay until the artifact store is cleaned."""
    with store.write() as conn:
        _lock(conn, model_id)
        conn.execute(
            update(logged_models)
            .where(logged_models.c.id == model_id)
            .values(lifecycle_stage=LifecycleStage.DELETED.value, updated_at=now_ms())
        )


def set_model_tags(store: Store, model_id: str, tags: Mapping[str, Any]) -> None:
    clean = stringify_mapping(tags, "tag")
    with store.write() as conn:
        current = _load_mapping(_lock(conn, model_id).tags)
        _save(conn, model_id, tags=_dump_mapping({**current, **clean}))


def delete_model_tag(store: Store, model_id: str, key: str) -> None:
    with store.write() as conn:
        current = _load_mapping(_lock(conn, model_id).tags)
        if key not in current:
            raise NotFound(f"logged model {model_id} has no tag {key!r}")
        del current[key]
        _save(conn, model_id, tags=_dump_mapping(current))


def log_model_params(store: Store, model_id: str, params: Mapping[str, Any]) -> None:
    """Record params; as on jobs, the same value twice is fine and a different one refused."""
    clean = stringify_mapping(params, "param")
    with store.write() as conn:
        current = _load_mapping(_lock(conn, model_id).params)
        for key, value in clean.items():
            if key in current and current[key] != value:
                raise InvalidInput(
                    f"param {key!r} of logged model {model_id} is {current[key]!r:.80}; "
                    f"it cannot change to {value!r:.80}"
                )
        _save(conn, model_id, params=_dump_mapping({**current, **clean}))


def log_model_metrics(store: Store, measured: Sequence[ModelMetric], *, job_id: int | None = None) -> None:
    """Attach metrics to their models; with ``job_id`` they are also points of that job.

    MLflow links a run's metrics to a model by sending them again with the model's
    id, so a point already in the job's history is not written twice.
    """
    if job_id is not None:
        write_metrics(store, _unseen_points(store, job_id, measured))
    by_model: dict[str, list[ModelMetric]] = {}
    for metric in measured:
        by_model.setdefault(metric.model_id, []).append(metric)
    with store.write() as conn:
        for model_id, items in by_model.items():
            current = _load_metrics(model_id, _lock(conn, model_id).metrics)
            seen = {_identity(m) for m in current}
            fresh = {_identity(m): m for m in items if _identity(m) not in seen}
            _save(conn, model_id, metrics=_dump_metrics([*current, *fresh.values()]))


def _identity(metric: ModelMetric) -> tuple[Any, ...]:
    """What makes two measurements the same one (NaN equals NaN here)."""
    value = "NaN" if math.isnan(metric.value) else metric.value
    return (
        metric.key,
        metric.step,
        metric.timestamp,
        value,
        metric.job_name,
        metric.dataset_name,
        metric.dataset_digest,
    )


def link_outputs(store: Store, job_id: int, model_ids: Sequence[str]) -> None:
    """Record that job ``job_id`` produced these models (unless another job already did)."""
    with store.write() as conn:
        for model_id in model_ids:
            _lock(conn, model_id)
        conn.execute(
            update(logged_models)
            .where(logged_models.c.id.in_(list(model_ids)), logged_models.c.job_id.is_(None))
            .values(job_id=job_id, updated_at=now_ms())
        )


def _unseen_points(store: Store, job_id: int, measured: Sequence[ModelMetric]) -> list[PendingPoint]:
    names = {m.key for m in measured}
    with store.read() as conn:
        query = select(metric_keys.c.name, metric_keys.c.id).where(metric_keys.c.name.in_(names))
        known = {name: key_id for name, key_id in conn.execute(query)}
        fresh: list[PendingPoint] = []
        for m in measured:
            point = (job_id, m.key, m.value, m.timestamp, m.step)
            key_id = known.get(m.key)
            if key_id is None or not _in_history(conn, job_id, key_id, m):
                fresh.append(point)
    return list(dict.fromkeys(fresh))


def _in_history(conn: Connection, job_id: int, key_id: int, metric: ModelMetric) -> bool:
    nan = math.isnan(metric.value)
    value = metrics.c.value.is_(None) if nan else metrics.c.value == metric.value
    query = select(metrics.c.step).where(
        metrics.c.job_id == job_id,
        metrics.c.key_id == key_id,
        metrics.c.step == metric.step,
        metrics.c.timestamp == metric.timestamp,
        value,
    )
    return conn.execute(query.limit(1)).first() is not None


def _lock(conn: Connection, model_id: str) -> Row[Any]:
    """The model's row, locked for this transaction on PostgreSQL (SQLite locks on write)."""
    query = select(logged_models).where(logged_models.c.id == model_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no logged model with id {model_id!r}")
    return row


def _save(conn: Connection, model_id: str, **values: str | None) -> None:
    conn.execute(
        update(logged_models).where(logged_models.c.id == model_id).values(updated_at=now_ms(), **values)
    )


# -- reading -----------------------------------------------------------------------------


def get_logged_model(store: Store, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
    with store.read() as conn:
        found = _load(conn, logged_models.c.id == model_id)
    if not found or (found[0].lifecycle_stage != LifecycleStage.ACTIVE and not allow_deleted):
        raise NotFound(f"no logged model with id {model_id!r}")
    return found[0]


def outputs_for(store: Store, job_ids: Sequence[int]) -> dict[int, list[str]]:
    """The ids of the active models each job produced, oldest first."""
    if not job_ids:
        return {}
    query = (
        select(logged_models.c.job_id, logged_models.c.id)
        .where(
            logged_models.c.job_id.in_(list(job_ids)),
            logged_models.c.lifecycle_stage == LifecycleStage.ACTIVE.value,
        )
        .order_by(logged_models.c.created_at, logged_models.c.id)
    )
    found: dict[int, list[str]] = {}
    with store.read() as conn:
        for job_id, model_id in conn.execute(query):
            found.setdefault(job_id, []).append(model_id)
    return found


def search_logged_models(
    store: Store,
    *,
    experiment_ids: Sequence[int],
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> ModelPage:
    """Active models of these experiments matching ``filter``, newest first by default.

    Fields: ``name``, ``model_id``, ``model_type``, ``status``, ``source_run_id``,
    ``creation_timestamp``, ``last_updated_timestamp``, ``params.K``, ``tags.K`` and
    ``metrics.K`` (the value at the greatest step).
    """
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}")
    offset = decode_page_token(page_token)
    node = parse_filter(filter)
    with store.read() as conn:
        found = _load(
            conn,
            and_(
                logged_models.c.experiment_id.in_(list(experiment_ids)),
                logged_models.c.lifecycle_stage == LifecycleStage.ACTIVE.value,
            ),
        )
    if node is not None:
        found = [m for m in found if matches(node, partial(_model_field, m))]
    keys = parse_order_by(list(order_by or [])) + parse_order_by(_DEFAULT_ORDER)
    ordered = sort_records(found, keys, _model_field)
    more = len(ordered) > offset + max_results
    token = encode_page_token(offset + max_results) if more else None
    return ModelPage(ordered[offset : offset + max_results], token)


_MODEL_ATTRIBUTES: dict[str, Any] = {
    "name": lambda m: m.name,
    "model_id": lambda m: m.id,
    "model_type": lambda m: m.model_type,
    # Upper case, as MLflow clients spell statuses in filters: status = 'READY'.
    "status": lambda m: m.status.value.upper(),
    "source_run_id": lambda m: m.job_name,
    "experiment_id": lambda m: m.experiment_id,
    "creation_timestamp": lambda m: m.created_at,
    "creation_time": lambda m: m.created_at,
    "last_updated_timestamp": lambda m: m.updated_at,
    "last_update_time": lambda m: m.updated_at,
}


def _model_field(model: LoggedModel, field: Field) -> str | float | int | None:
    if field.kind == "param":
        return model.params.get(field.key)
    if field.kind == "tag":
        return model.tags.get(field.key)
    if field.kind == "metric":
        latest = [m for m in model.metrics if m.key == field.key]
        if not latest:
            return None
        return max(latest, key=lambda m: (m.step, m.timestamp)).value
    attribute = _MODEL_ATTRIBUTES.get(field.key.lower())
    if field.kind != "attribute" or attribute is None:
        known = ", ".join(sorted(_MODEL_ATTRIBUTES))
        raise InvalidInput(f"logged models cannot be searched by {field}", hint=f"known: {known}")
    value: str | float | int | None = attribute(model)
    return value


def _load(conn: Connection, condition: Any) -> list[LoggedModel]:
    query = (
        select(logged_models, jobs.c.name.label("job_name"))
        .outerjoin(jobs, jobs.c.id == logged_models.c.job_id)
        .where(condition)
    )
    return [_model(row) for row in conn.execute(query)]


def _model(row: Row[Any]) -> LoggedModel:
    return LoggedModel(
        id=row.id,
        name=row.name,
        experiment_id=row.experiment_id,
        job_name=row.job_name,
        model_type=row.model_type,
        status=ModelStatus(row.status),
        status_message=row.status_message,
        artifact_location=row.artifact_location,
        lifecycle_stage=LifecycleStage(row.lifecycle_stage),
        created_at=row.created_at,
        updated_at=row.updated_at,
        params=_load_mapping(row.params),
        tags=_load_mapping(row.tags),
        metrics=_load_metrics(row.id, row.metrics),
    )


# -- JSON columns ------------------------------------------------------------------------


def _dump_mapping(values: Mapping[str, str]) -> str | None:
    return orjson.dumps(dict(values)).decode() if values else None


def _load_mapping(raw: str | None) -> dict[str, str]:
    return dict(orjson.loads(raw)) if raw else {}


def _dump_metrics(items: Sequence[ModelMetric]) -> str:
    rows = []
    for item in items:
        row = asdict(item)
        del row["model_id"]
        row["value"] = None if math.isnan(item.value) else item.value  # JSON has no NaN
        rows.append(row)
    return orjson.dumps(rows).decode()


def _load_metrics(model_id: str, raw: str | None) -> list[ModelMetric]:
    if not raw:
        return []
    loaded = []
    for row in orjson.loads(raw):
        value = math.nan if row["value"] is None else float(row["value"])
        loaded.append(ModelMetric(**{**row, "model_id": model_id, "value": value}))
    return loaded
