"""Search jobs by filter and order them, in SQL over summaries (never over history)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.sql.elements import UnaryExpression

from keel.errors import InvalidInput
from keel.store import Store
from keel.store.schema import job_inputs, job_params, job_tags, jobs, metric_keys, metric_summaries
from keel.tracking.entities import Job, JobStatus, LifecycleStage
from keel.tracking.filters import (
    Comparison,
    Field,
    Logical,
    Node,
    OrderKey,
    parse_filter,
    parse_order_by,
)
from keel.tracking.jobs import load_jobs

MAX_RESULTS_LIMIT = 50_000

# MLflow's run statuses, read as Keel's job statuses (and written back by the MLflow API).
MLFLOW_STATUSES: dict[str, JobStatus] = {
    "RUNNING": JobStatus.RUNNING,
    "SCHEDULED": JobStatus.QUEUED,
    "FINISHED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "KILLED": JobStatus.CANCELED,
}

_SUMMARY_COLUMNS = {
    "last": metric_summaries.c.last_value,
    "min": metric_summaries.c.min_value,
    "max": metric_summaries.c.max_value,
    "count": metric_summaries.c.point_count,
}
_ATTRIBUTES: dict[str, Any] = {
    "status": jobs.c.status,
    "run_name": jobs.c.display_name,
    "display_name": jobs.c.display_name,
    "name": jobs.c.name,
    "run_id": jobs.c.name,
    "job_name": jobs.c.name,
    "start_time": jobs.c.start_time,
    "created": jobs.c.start_time,
    "created_at": jobs.c.created_at,
    "end_time": jobs.c.end_time,
    "user_id": jobs.c.user_id,
    "user": jobs.c.user_id,
    "experiment_id": jobs.c.experiment_id,
    "type": jobs.c.type,
    "artifact_uri": jobs.c.artifact_location,
}
_NUMERIC_ATTRIBUTES = {"start_time", "created", "created_at", "end_time", "experiment_id"}
_DATASET_COLUMNS = {
    "name": job_inputs.c.name,
    "digest": job_inputs.c.digest,
    "context": job_inputs.c.tags,
}
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN")
_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN")


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_page_token: str | None


def search_jobs(
    store: Store,
    *,
    experiment_ids: Sequence[int] | None = None,
    filter: str | None = None,
    order_by: Sequence[str] | str | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    view: str = "active",
    parent_id: int | None = None,
) -> JobPage:
    """Jobs matching ``filter``, ordered by ``order_by`` (newest first by default)."""
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}, got {max_results}")
    offset = decode_page_token(page_token)
    query = select(jobs.c.id).where(jobs.c.lifecycle_stage.in_(_stages(view)))
    if experiment_ids is not None:
        query = query.where(jobs.c.experiment_id.in_(list(experiment_ids)))
    if parent_id is not None:
        query = query.where(jobs.c.parent_id == parent_id)
    node = parse_filter(filter)
    if node is not None:
        query = query.where(_condition(node))
    query = _apply_order(query, parse_order_by(order_by))
    query = query.limit(max_results + 1).offset(offset)
    with store.read() as conn:
        ids = list(conn.execute(query).scalars())
        has_more = len(ids) > max_results
        found = load_jobs(conn, ids[:max_results])
    token = encode_page_token(offset + max_results) if has_more else None
    return JobPage(found, token)


def _stages(view: str) -> list[str]:
    normal = view.lower().removesuffix("_only")
    if normal == "all":
        return [LifecycleStage.ACTIVE.value, LifecycleStage.DELETED.value]
    if normal in ("active", "deleted"):
        return [normal]
    raise InvalidInput(f"unknown view {view!r}", hint="expected active, deleted or all")


# -- filters ----------------------------------------------------------------------------


def _condition(node: Node) -> ColumnElement[bool]:
    if isinstance(node, Logical):
        parts = [_condition(item) for item in node.items]
        return and_(*parts) if node.op == "AND" else or_(*parts)
    return _comparison(node)


def _comparison(comparison: Comparison) -> ColumnElement[bool]:
    field = comparison.field
    if field.kind == "metric":
        return _metric_comparison(comparison)
    if field.kind in ("param", "tag"):
        table = job_params if field.kind == "param" else job_tags
        if comparison.op == "IS NULL":
            return not_(_exists_key(table, field.key))
        if comparison.op == "IS NOT NULL":
            return _exists_key(table, field.key)
        test = _string_test(table.c.value, comparison)
        return exists().where(table.c.job_id == jobs.c.id, table.c.key == field.key, test)
    if field.kind == "dataset":
        column = _DATASET_COLUMNS.get(field.key)
        if column is None:
            raise InvalidInput(f"unknown dataset field {field.key!r}; expected name, digest or context")
        if field.key == "context":
            comparison = Comparison(field, "LIKE", f'%"mlflow.data.context":"{comparison.value}"%', False)
        return exists().where(job_inputs.c.job_id == jobs.c.id, _string_test(column, comparison))
    return _attribute_comparison(comparison)


def _exists_key(table: Any, key: str) -> ColumnElement[bool]:
    return exists().where(table.c.job_id == jobs.c.id, table.c.key == key)


def _metric_comparison(comparison: Comparison) -> ColumnElement[bool]:
    field = comparison.field
    key_id = select(metric_keys.c.id).where(metric_keys.c.name == field.key).scalar_subquery()
    base = [metric_summaries.c.job_id == jobs.c.id, metric_summaries.c.key_id == key_id]
    if comparison.op == "IS NULL":
        return not_(exists().where(*base))
    if comparison.op == "IS NOT NULL":
        return exists().where(*base)
    if not comparison.value_is_number or comparison.op not in _NUMBER_OPS:
        raise InvalidInput(
            f"{field} is a number: compare it with {', '.join(_NUMBER_OPS[:6])} and a number",
            hint=f"got {comparison.op} {comparison.value!r}",
        )
    column = _SUMMARY_COLUMNS[field.aggregate]
    return exists().where(*base, _number_test(column, comparison))


def _attribute_comparison(comparison: Comparison) -> ColumnElement[bool]:
    name = comparison.field.key.lower()
    column = _ATTRIBUTES.get(name)
    if column is None:
        known = ", ".join(sorted(_ATTRIBUTES))
        raise InvalidInput(f"unknown attribute {comparison.field.key!r}", hint=f"known: {known}")
    if comparison.op == "IS NULL":
        return column.is_(None)  # type: ignore[no-any-return]
    if comparison.op == "IS NOT NULL":
        return column.is_not(None)  # type: ignore[no-any-return]
    if name in _NUMERIC_ATTRIBUTES:
        if not comparison.value_is_number:
            raise InvalidInput(f"attribute {name} is a number; compare it with a number")
        return _number_test(column, comparison)
    if name == "status":
        comparison = _status_comparison(comparison)
    return _string_test(column, comparison)


def _status_comparison(comparison: Comparison) -> Comparison:
    def normal(value: str | float) -> str:
        text = str(value)
        if text.upper() in MLFLOW_STATUSES:
            return MLFLOW_STATUSES[text.upper()].value
        try:
            return JobStatus(text.lower()).value
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(f"unknown status {text!r}", hint=f"expected one of {known}") from None

    if comparison.op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        return comparison
    value = comparison.value
    if isinstance(value, tuple):
        return Comparison(comparison.field, comparison.op, tuple(normal(v) for v in value), False)
    return Comparison(comparison.field, comparison.op, normal(value or ""), False)


def _string_test(column: Any, comparison: Comparison) -> ColumnElement[bool]:
    op, value = comparison.op, comparison.value
    if op not in _STRING_OPS:
        raise InvalidInput(
            f"{comparison.field} holds text: compare it with =, !=, LIKE, ILIKE or IN",
            hint=f"got {op}",
        )
    if isinstance(value, tuple):
        texts = [_text(v) for v in value]
        return column.in_(texts) if op == "IN" else column.not_in(texts)  # type: ignore[no-any-return]
    text = _text(value)
    tests: dict[str, Any] = {
        "=": lambda: column == text,
        "!=": lambda: column != text,
        "LIKE": lambda: column.like(text),
        "NOT LIKE": lambda: column.not_like(text),
        "ILIKE": lambda: func.lower(column).like(func.lower(text)),
        "NOT ILIKE": lambda: not_(func.lower(column).like(func.lower(text))),
    }
    if op in ("IN", "NOT IN"):
        raise InvalidInput(f"{op} needs a parenthesised list of values")
    return tests[op]()  # type: ignore[no-any-return]


def _number_test(column: Any, comparison: Comparison) -> ColumnElement[bool]:
    value = comparison.value
    if isinstance(value, tuple):
        if not comparison.value_is_number:
            raise InvalidInput(f"{comparison.field} is a number; list numbers after IN")
        return column.in_(value) if comparison.op == "IN" else column.not_in(value)  # type: ignore[no-any-return]
    tests: dict[str, Any] = {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }
    return tests[comparison.op]()  # type: ignore[no-any-return]


def _text(value: str | float | None) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- ordering ---------------------------------------------------------------------------


def _apply_order(query: Select[Any], keys: list[OrderKey]) -> Select[Any]:
    clauses: list[UnaryExpression[Any]] = []
    for position, key in enumerate(keys):
        column, query = _order_column(query, key.field, position)
        ordered = column.desc() if key.descending else column.asc()
        clauses.append(ordered.nulls_last())
    if not any(k.field.kind == "attribute" and k.field.key == "start_time" for k in keys):
        clauses.append(jobs.c.start_time.desc().nulls_last())
    clauses.append(jobs.c.id.desc())
    return query.order_by(*clauses)


def _order_column(query: Select[Any], field: Field, position: int) -> tuple[Any, Select[Any]]:
    if field.kind == "metric":
        alias = metric_summaries.alias(f"order_{position}")
        key_id = select(metric_keys.c.id).where(metric_keys.c.name == field.key).scalar_subquery()
        query = query.outerjoin(alias, and_(alias.c.job_id == jobs.c.id, alias.c.key_id == key_id))
        column = {
            "last": alias.c.last_value,
            "min": alias.c.min_value,
            "max": alias.c.max_value,
            "count": alias.c.point_count,
        }[field.aggregate]
        return column, query
    if field.kind in ("param", "tag"):
        table = (job_params if field.kind == "param" else job_tags).alias(f"order_{position}")
        query = query.outerjoin(table, and_(table.c.job_id == jobs.c.id, table.c.key == field.key))
        return table.c.value, query
    if field.kind == "attribute" and field.key.lower() in _ATTRIBUTES:
        return _ATTRIBUTES[field.key.lower()], query
    raise InvalidInput(f"cannot order by {field}", hint="order by metrics, params, tags or attributes")


# -- paging -----------------------------------------------------------------------------


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidInput("the page token is not one this server issued")
