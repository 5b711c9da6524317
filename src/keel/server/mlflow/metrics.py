"""Metric ingest and history over MLflow REST: log-metric, log-batch, get-history.

This is the path MLflow clients hit hardest, so it stays short: each request is
parsed once, checked, and written with :func:`keel.tracking.metrics.write_metrics`
in one transaction, so the points are durable when the response goes out. A well
formed point (string key already seen, float value, int timestamp and step) is
taken without any further call; anything else goes through the full checks, which
name the offending field. Metrics that carry a ``model_id`` are also attached to
that logged model.
"""

from __future__ import annotations

from typing import Any

from keel.clock import now_ms
from keel.errors import InvalidInput
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, Handler, run_id
from keel.server.mlflow.runs import set_run_tags
from keel.tracking import jobs
from keel.tracking import metrics as ops
from keel.tracking.entities import MetricPoint
from keel.tracking.logged_models import ModelMetric, log_model_metrics
from keel.tracking.metrics import PendingPoint
from keel.tracking.search import decode_page_token, encode_page_token
from keel.tracking.validation import MAX_STEP, check_step

# MLflow's log-batch limits, enforced as its server does.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
# get-history-bulk-interval limits, as MLflow's server has them.
MAX_RUNS_PER_BULK_REQUEST = 100
MAX_RESULTS_PER_RUN = 2500
_WHOLE_HISTORY = 2**62
_INT64_MAX = 2**63 - 1


def log_metric(context: Context, fields: Fields) -> JSON:
    name = run_id(fields)
    job_id = context.job_id(name)
    point, linked = _point(context, job_id, name, fields)
    if linked is None:
        ops.write_metrics(context.store, [point])
    else:
        log_model_metrics(context.store, [linked], job_id=job_id)
    return {}


def log_batch(context: Context, fields: Fields) -> JSON:
    name = run_id(fields)
    job_id = context.job_id(name)
    items = fields.raw("metrics") or []
    if not isinstance(items, list):
        raise InvalidInput("metrics must be a list")
    _check_batch_size(len(items), len(fields.messages("params")), len(fields.messages("tags")))
    params, tags = _batch_params(fields), fields.pairs("tags")
    points, linked = _points(context, job_id, name, items)
    if params:
        jobs.log_params(context.store, job_id, params)
    if tags:
        set_run_tags(context, name, tags)
    ops.write_metrics(context.store, points)
    if linked:
        log_model_metrics(context.store, linked, job_id=job_id)
    return {}


def _check_batch_size(metrics: int, params: int, tags: int) -> None:
    if metrics > MAX_METRICS_PER_BATCH:
        raise InvalidInput(f"a batch may hold at most {MAX_METRICS_PER_BATCH} metrics, got {metrics}")
    if params > MAX_PARAMS_TAGS_PER_BATCH or tags > MAX_PARAMS_TAGS_PER_BATCH:
        raise InvalidInput(
            f"a batch may hold at most {MAX_PARAMS_TAGS_PER_BATCH} params and "
            f"{MAX_PARAMS_TAGS_PER_BATCH} tags, got {params} and {tags}"
        )
    if metrics + params + tags > MAX_ENTITIES_PER_BATCH:
        raise InvalidInput(
            f"a batch may hold at most {MAX_ENTITIES_PER_BATCH} metrics, params and tags "
            f"together, got {metrics + params + tags}"
        )


def _batch_params(fields: Fields) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in fields.messages("params"):
        key, value = item.text("key"), item.text("value")
        if params.get(key, value) != value:
            raise InvalidInput(f"param {key!r} appears twice in the batch with different values")
        params[key] = value
    return params


def _points(
    context: Context, job_id: int, name: str, items: list[Any]
) -> tuple[list[PendingPoint], list[ModelMetric]]:
    """The batch's points, split into plain ones and ones linked to a logged model."""
    known = context.known_metric_keys
    points: list[PendingPoint] = []
    linked: list[ModelMetric] = []
    for index, item in enumerate(items):
        if type(item) is dict and "model_id" not in item:
            key, value = item.get("key"), item.get("value")
            timestamp, step = item.get("timestamp"), item.get("step", 0)
            if (
                type(key) is str
                and key in known
                and type(value) is float
                and type(timestamp) is int
                and type(step) is int
                and 0 <= step <= MAX_STEP
                and 0 <= timestamp <= _INT64_MAX
            ):
                points.append((job_id, key, value, timestamp, step))
                continue
        if not isinstance(item, dict):
            raise InvalidInput(f"metrics[{index}] must be an object")
        point, model = _point(context, job_id, name, Fields(item, f"metrics[{index}]"))
        if model is None:
            points.append(point)
        else:
            linked.append(model)
    return points, linked


def _point(
    context: Context, job_id: int, name: str, fields: Fields
) -> tuple[PendingPoint, ModelMetric | None]:
    """One metric, fully checked; with a model id, also what to attach to that model."""
    key = context.metric_key(fields.text("key"))
    value = fields.double("value")
    stamp = fields.int64("timestamp")
    timestamp = now_ms() if stamp is None else stamp
    step = check_step(key, fields.int64("step") or 0)
    model_id = fields.optional_text("model_id")
    if not model_id:
        return (job_id, key, value, timestamp, step), None
    linked = ModelMetric(
        model_id=model_id,
        key=key,
        value=value,
        step=step,
        timestamp=timestamp,
        job_name=name,
        dataset_name=fields.optional_text("dataset_name"),
        dataset_digest=fields.optional_text("dataset_digest"),
    )
    return (job_id, key, value, timestamp, step), linked


def get_metric_history(context: Context, fields: Fields) -> JSON:
    """Every point of one metric, or a page of them when ``max_results`` is given."""
    name = run_id(fields)
    job_id = context.job_id(name)
    key = fields.text("metric_key")
    limit = fields.int64("max_results")
    token = fields.optional_text("page_token")
    if limit is None and not token:
        points = ops.get_metric_history(context.store, job_id, key)
        return {"metrics": [render.metric(p, run_id=name) for p in points]}
    if limit is not None and limit < 1:
        raise InvalidInput(f"max_results must be a positive integer, got {limit}")
    size = limit or _WHOLE_HISTORY
    offset = decode_page_token(token)
    page = ops.get_metric_history_page(context.store, job_id, key, offset=offset, limit=size + 1)
    answer: JSON = {"metrics": [render.metric(p, run_id=name) for p in page[:size]]}
    if len(page) > size:
        answer["next_page_token"] = encode_page_token(offset + size)
    return answer


def get_metric_history_bulk_interval(context: Context, fields: Fields) -> JSON:
    """Up to ``max_results`` points per run, spread over the steps, for charting."""
    names = fields.texts("run_ids")
    if not 1 <= len(names) <= MAX_RUNS_PER_BULK_REQUEST:
        raise InvalidInput(f"run_ids must name 1 to {MAX_RUNS_PER_BULK_REQUEST} runs")
    key = fields.text("metric_key")
    limit = fields.int64("max_results") or MAX_RESULTS_PER_RUN
    if not 1 <= limit <= MAX_RESULTS_PER_RUN:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_PER_RUN}")
    start, end = fields.int64("start_step"), fields.int64("end_step")
    if (start is None) != (end is None) or (start is not None and end is not None and start > end):
        raise InvalidInput("give both start_step and end_step, with start_step <= end_step")
    found: list[JSON] = []
    for name in names:
        job_id = context.job_id(name)
        if start is None or end is None:
            points = ops.get_metric_history(context.store, job_id, key, max_points=limit)
        else:
            within = ops.get_metric_history(context.store, job_id, key)
            points = _spread([p for p in within if start <= p.step <= end], limit)
        found.extend(render.metric(p, run_id=name) for p in points)
    return {"metrics": found}


def _spread(points: list[MetricPoint], limit: int) -> list[MetricPoint]:
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1) if limit > 1 else 0
    return [points[round(i * stride)] for i in range(limit)]


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/runs/log-metric", log_metric),
    ("POST", "/runs/log-batch", log_batch),
    ("GET", "/metrics/get-history", get_metric_history),
    ("GET", "/metrics/get-history-bulk-interval", get_metric_history_bulk_interval),
]
