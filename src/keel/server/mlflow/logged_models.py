"""MLflow 3 logged models over REST: create, get, finalize, delete, search, tags, params.

``mlflow.<flavor>.log_model`` and autolog create a model here, upload its files
through the artifact proxy, then finalize it. The operations live in
keel.tracking.logged_models.
"""

from __future__ import annotations

from keel.errors import InvalidInput
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, Handler
from keel.tracking import experiments
from keel.tracking import logged_models as ops

DEFAULT_MAX_RESULTS = 100
# LoggedModelStatus, by name or by enum number.
_FINAL_STATUSES = {
    "LOGGED_MODEL_READY": ops.ModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": ops.ModelStatus.FAILED,
    "LOGGED_MODEL_PENDING": ops.ModelStatus.PENDING,
    2: ops.ModelStatus.READY,
    3: ops.ModelStatus.FAILED,
    1: ops.ModelStatus.PENDING,
}


def create_logged_model(context: Context, fields: Fields) -> JSON:
    experiment = experiments.get_experiment(context.store, fields.text("experiment_id"))
    source = fields.optional_text("source_run_id")
    model = ops.create_logged_model(
        context.store,
        experiment,
        name=fields.optional_text("name"),
        job_id=context.job_id(source) if source else None,
        model_type=fields.optional_text("model_type"),
        params=fields.pairs("params"),
        tags=fields.pairs("tags"),
    )
    return {"model": render.logged_model(model)}


def get_logged_model(context: Context, fields: Fields) -> JSON:
    deleted_too = fields.boolean("allow_deleted")
    model = ops.get_logged_model(context.store, fields.text("model_id"), allow_deleted=deleted_too)
    return {"model": render.logged_model(model)}


def finalize_logged_model(context: Context, fields: Fields) -> JSON:
    value = fields.raw("status")
    status = _FINAL_STATUSES.get(value) if isinstance(value, str | int) else None
    if status is None or isinstance(value, bool):
        known = ", ".join(name for name in _FINAL_STATUSES if isinstance(name, str))
        raise InvalidInput(f"status must be one of {known}, got {value!r:.60}")
    model = ops.finalize_logged_model(context.store, fields.text("model_id"), status)
    return {"model": render.logged_model(model)}


def delete_logged_model(context: Context, fields: Fields) -> JSON:
    ops.delete_logged_model(context.store, fields.text("model_id"))
    return {}


def search_logged_models(context: Context, fields: Fields) -> JSON:
    raw_ids = fields.raw("experiment_ids")
    items = raw_ids if isinstance(raw_ids, list) else [] if raw_ids is None else [raw_ids]
    order_by = [
        f"{item.text('field_name')} {'ASC' if item.boolean('ascending', default=True) else 'DESC'}"
        for item in fields.messages("order_by")
    ]
    page = ops.search_logged_models(
        context.store,
        experiment_ids=[experiments.parse_experiment_id(item) for item in items],
        filter=fields.optional_text("filter"),
        order_by=order_by,
        max_results=fields.int64("max_results") or DEFAULT_MAX_RESULTS,
        page_token=fields.optional_text("page_token"),
    )
    return render.page("models", [render.logged_model(m) for m in page.models], page.next_page_token)


def set_logged_model_tags(context: Context, fields: Fields) -> JSON:
    ops.set_model_tags(context.store, fields.text("model_id"), fields.pairs("tags"))
    return {}


def delete_logged_model_tag(context: Context, fields: Fields) -> JSON:
    ops.delete_model_tag(context.store, fields.text("model_id"), fields.text("tag_key"))
    return {}


def log_logged_model_params(context: Context, fields: Fields) -> JSON:
    ops.log_model_params(context.store, fields.text("model_id"), fields.pairs("params"))
    return {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/logged-models", create_logged_model),
    ("POST", "/logged-models/search", search_logged_models),
    ("GET", "/logged-models/{model_id}", get_logged_model),
    ("PATCH", "/logged-models/{model_id}", finalize_logged_model),
    ("DELETE", "/logged-models/{model_id}", delete_logged_model),
    ("PATCH", "/logged-models/{model_id}/tags", set_logged_model_tags),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key:path}", delete_logged_model_tag),
    ("POST", "/logged-models/{model_id}/params", log_logged_model_params),
]
