"""Experiments: create, find, rename, delete and restore, tag."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import experiment_tags, experiments, jobs
from keel.store.upsert import upsert
from keel.tracking.entities import Experiment, LifecycleStage
from keel.tracking.validation import check_display_name, stringify_mapping

if TYPE_CHECKING:
    from keel.tracking.filters import Field

DEFAULT_EXPERIMENT_ID = 0
DEFAULT_EXPERIMENT_NAME = "Default"


def ensure_default_experiment(store: Store) -> None:
    """The MLflow convention: experiment 0, "Default", always exists."""
    with store.read() as conn:
        if conn.execute(select(experiments.c.id).where(experiments.c.id == 0)).first():
            return
    now = now_ms()
    try:
        with store.write() as conn:
            conn.execute(
                insert(experiments).values(
                    id=DEFAULT_EXPERIMENT_ID,
                    name=DEFAULT_EXPERIMENT_NAME,
                    lifecycle_stage=LifecycleStage.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # another process created it first


def create_experiment(
    store: Store,
    name: str,
    *,
    artifact_location: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Experiment:
    check_display_name(name, "experiment name")
    clean_tags = stringify_mapping(tags, "tag")
    now = now_ms()
    try:
        with store.write() as conn:
            experiment_id = conn.execute(
                insert(experiments)
                .values(
                    name=name,
                    artifact_location=artifact_location,
                    lifecycle_stage=LifecycleStage.ACTIVE.value,
                    created_at=now,
                    updated_at=now,
                )
                .returning(experiments.c.id)
            ).scalar_one()
            _write_tags(conn, experiment_id, clean_tags)
    except IntegrityError:
        raise Conflict(f"experiment {name!r} already exists") from None
    return get_experiment(store, experiment_id)


def get_or_create_experiment(store: Store, name: str | None) -> Experiment:
    """The named experiment, created on first use; the Default one for None."""
    if name is None:
        ensure_default_experiment(store)
        return get_experiment(store, DEFAULT_EXPERIMENT_ID)
    try:
        return get_experiment_by_name(store, name)
    except NotFound:
        pass
    try:
        return create_experiment(store, name)
    except Conflict:
        return get_experiment_by_name(store, name)


def get_experiment(store: Store, experiment_id: int | str) -> Experiment:
    number = parse_experiment_id(experiment_id)
    with store.read() as conn:
        found = _load(conn, [number])
    if not found:
        if number == DEFAULT_EXPERIMENT_ID:
            ensure_default_experiment(store)
            return get_experiment(store, number)
        raise NotFound(f"no experiment with id {experiment_id}")
    return found[0]


def get_experiment_by_name(store: Store, name: str) -> Experiment:
    with store.read() as conn:
        row = conn.execute(select(experiments.c.id).where(experiments.c.name == name)).first()
        found = _load(conn, [row.id]) if row else []
    if not found:
        if name == DEFAULT_EXPERIMENT_NAME:
            ensure_default_experiment(store)
            return get_experiment(store, DEFAULT_EXPERIMENT_ID)
        raise NotFound(f"no experiment named {name!r}", hint="see `keel experiment list`")
    return found[0]


def list_experiments(
    store: Store, *, view: str = "active", max_results: int | None = None, offset: int = 0
) -> list[Experiment]:
    """Experiments newest first; ``view`` is active, deleted or all."""
    ensure_default_experiment(store)
    query = select(experiments.c.id).order_by(experiments.c.created_at.desc(), experiments.c.id)
    stages = _stages_for(view)
    query = query.where(experiments.c.lifecycle_stage.in_(stages))
    if max_results is not None:
        query = query.limit(max_results).offset(offset)
    with store.read() as conn:
        ids = list(conn.execute(query).scalars())
        return _load(conn, ids)


@dataclass(frozen=True)
class ExperimentPage:
    experiments: list[Experiment]
    next_page_token: str | None


_EXPERIMENT_ATTRIBUTES: dict[str, Callable[[Experiment], str | int]] = {
    "name": lambda e: e.name,
    "experiment_id": lambda e: e.id,
    "id": lambda e: e.id,
    "creation_time": lambda e: e.created_at,
    "created_at": lambda e: e.created_at,
    "last_update_time": lambda e: e.updated_at,
    "updated_at": lambda e: e.updated_at,
}
_DEFAULT_EXPERIMENT_ORDER = "creation_time DESC, experiment_id ASC"


def search_experiments(
    store: Store,
    *,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    view: str = "active",
    max_results: int = 1000,
    page_token: str | None = None,
) -> ExperimentPage:
    """Experiments matching an MLflow-style filter on name, times and tags, in pages.

    Experiments number in the hundreds, so they are filtered in memory with the same
    filter language as jobs rather than with SQL of their own.
    """
    from keel.tracking.filters import matches, parse_filter, parse_order_by, sort_records
    from keel.tracking.search import decode_page_token, encode_page_token

    if not 1 <= max_results <= 50_000:
        raise InvalidInput(f"max_results must be between 1 and 50000, got {max_results}")
    offset = decode_page_token(page_token)
    node = parse_filter(filter)
    found = list_experiments(store, view=view)
    if node is not None:
        found = [e for e in found if matches(node, partial(_experiment_field, e))]
    keys = parse_order_by(order_by) + parse_order_by(_DEFAULT_EXPERIMENT_ORDER)
    ordered = sort_records(found, keys, _experiment_field)
    page = ordered[offset : offset + max_results]
    more = len(ordered) > offset + max_results
    return ExperimentPage(page, encode_page_token(offset + max_results) if more else None)


def _experiment_field(experiment: Experiment, field: Field) -> str | int | None:
    if field.kind == "tag":
        return experiment.tags.get(field.key)
    attribute = _EXPERIMENT_ATTRIBUTES.get(field.key.lower())
    if field.kind != "attribute" or attribute is None:
        known = ", ".join(sorted(_EXPERIMENT_ATTRIBUTES))
        raise InvalidInput(
            f"experiments cannot be searched by {field}", hint=f"use tags.<key> or one of {known}"
        )
    return attribute(experiment)


def count_jobs_by_experiment(store: Store) -> dict[int, int]:
    with store.read() as conn:
        rows = conn.execute(
            select(jobs.c.experiment_id, func.count())
            .where(jobs.c.lifecycle_stage == LifecycleStage.ACTIVE.value)
            .group_by(jobs.c.experiment_id)
        )
        return {row[0]: row[1] for row in rows}


def rename_experiment(store: Store, experiment_id: int | str, new_name: str) -> None:
    check_display_name(new_name, "experiment name")
    number = parse_experiment_id(experiment_id)
    get_experiment(store, number)
    try:
        with store.write() as conn:
            conn.execute(
                update(experiments)
                .where(experiments.c.id == number)
                .values(name=new_name, updated_at=now_ms())
            )
    except IntegrityError:
        raise Conflict(f"experiment {new_name!r} already exists") from None


def set_experiment_lifecycle(store: Store, experiment_id: int | str, stage: LifecycleStage) -> None:
    """Delete (softly) or restore an experiment together with its jobs."""
    number = parse_experiment_id(experiment_id)
    current = get_experiment(store, number)
    if stage == LifecycleStage.DELETED and number == DEFAULT_EXPERIMENT_ID:
        raise InvalidInput("the Default experiment cannot be deleted")
    if current.lifecycle_stage == stage:
        raise InvalidInput(f"experiment {current.name!r} is already {stage.value}")
    with store.write() as conn:
        conn.execute(
            update(experiments)
            .where(experiments.c.id == number)
            .values(lifecycle_stage=stage.value, updated_at=now_ms())
        )
        conn.execute(update(jobs).where(jobs.c.experiment_id == number).values(lifecycle_stage=stage.value))


def set_experiment_tags(store: Store, experiment_id: int | str, tags: Mapping[str, Any]) -> None:
    number = parse_experiment_id(experiment_id)
    get_experiment(store, number)
    with store.write() as conn:
        _write_tags(conn, number, stringify_mapping(tags, "tag"))


def delete_experiment_tag(store: Store, experiment_id: int | str, key: str) -> None:
    number = parse_experiment_id(experiment_id)
    with store.write() as conn:
        gone = conn.execute(
            delete(experiment_tags).where(
                experiment_tags.c.experiment_id == number, experiment_tags.c.key == key
            )
        )
        if gone.rowcount == 0:
            raise NotFound(f"experiment {experiment_id} has no tag {key!r}")


def parse_experiment_id(experiment_id: int | str) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"experiment id must be a whole number, got {experiment_id!r}") from None


def _stages_for(view: str) -> Sequence[str]:
    views = {
        "active": [LifecycleStage.ACTIVE.value],
        "active_only": [LifecycleStage.ACTIVE.value],
        "deleted": [LifecycleStage.DELETED.value],
        "deleted_only": [LifecycleStage.DELETED.value],
        "all": [LifecycleStage.ACTIVE.value, LifecycleStage.DELETED.value],
    }
    try:
        return views[view.lower()]
    except KeyError:
        raise InvalidInput(f"unknown view {view!r}", hint="expected active, deleted or all") from None


def _write_tags(conn: Connection, experiment_id: int, tags: dict[str, str]) -> None:
    rows = [{"experiment_id": experiment_id, "key": k, "value": v} for k, v in tags.items()]
    upsert(conn, experiment_tags, rows, key=["experiment_id", "key"])


def _load(conn: Connection, ids: Sequence[int]) -> list[Experiment]:
    if not ids:
        return []
    rows = {row.id: row for row in conn.execute(select(experiments).where(experiments.c.id.in_(ids)))}
    tags: dict[int, dict[str, str]] = {}
    for tag in conn.execute(select(experiment_tags).where(experiment_tags.c.experiment_id.in_(ids))):
        tags.setdefault(tag.experiment_id, {})[tag.key] = tag.value
    return [_experiment(rows[i], tags.get(i, {})) for i in ids if i in rows]


def _experiment(row: Row[Any], tags: dict[str, str]) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        artifact_location=row.artifact_location,
        lifecycle_stage=LifecycleStage(row.lifecycle_stage),
        created_at=row.created_at,
        updated_at=row.updated_at,
        tags=tags,
    )
