"""Experiments over MLflow REST: create, get, search, rename, delete, restore, tag.

Each handler reads its fields and calls the operation in keel.tracking.experiments.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import urlparse

from keel.artifacts import safe_relative_path
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, Handler, view_type
from keel.tracking import experiments as ops
from keel.tracking.entities import LifecycleStage

DEFAULT_MAX_RESULTS = 1000


def create_experiment(context: Context, fields: Fields) -> JSON:
    location = artifact_location(fields.optional_text("artifact_location"))
    found = ops.create_experiment(
        context.store, fields.text("name"), artifact_location=location, tags=fields.pairs("tags")
    )
    return {"experiment_id": str(found.id)}


def artifact_location(given: str | None) -> str | None:
    """Keel's form of a client-chosen artifact root: a URL, or a path under the workspace's.

    ``mlflow-artifacts:`` URIs name a folder under the server's own root, so they are
    kept as that (checked) relative path; bare absolute paths become ``file://`` URLs.
    """
    if not given:
        return None
    if given.startswith("mlflow-artifacts:"):
        return safe_relative_path(urlparse(given).path.lstrip("/"))
    if "://" in given:
        return given
    if given.startswith("/"):
        return PurePosixPath(given).as_uri()
    return safe_relative_path(given)


def get_experiment(context: Context, fields: Fields) -> JSON:
    found = ops.get_experiment(context.store, fields.text("experiment_id"))
    return {"experiment": render.experiment(found)}


def get_experiment_by_name(context: Context, fields: Fields) -> JSON:
    found = ops.get_experiment_by_name(context.store, fields.text("experiment_name"))
    return {"experiment": render.experiment(found)}


def search_experiments(context: Context, fields: Fields) -> JSON:
    page = ops.search_experiments(
        context.store,
        filter=fields.optional_text("filter"),
        order_by=fields.texts("order_by") or None,
        view=view_type(fields, "view_type"),
        max_results=fields.int64("max_results") or DEFAULT_MAX_RESULTS,
        page_token=fields.optional_text("page_token"),
    )
    found = [render.experiment(e) for e in page.experiments]
    return render.page("experiments", found, page.next_page_token)


def update_experiment(context: Context, fields: Fields) -> JSON:
    ops.rename_experiment(context.store, fields.text("experiment_id"), fields.text("new_name"))
    return {}


def delete_experiment(context: Context, fields: Fields) -> JSON:
    experiment_id = fields.text("experiment_id")
    ops.set_experiment_lifecycle(context.store, experiment_id, LifecycleStage.DELETED)
    return {}


def restore_experiment(context: Context, fields: Fields) -> JSON:
    experiment_id = fields.text("experiment_id")
    ops.set_experiment_lifecycle(context.store, experiment_id, LifecycleStage.ACTIVE)
    return {}


def set_experiment_tag(context: Context, fields: Fields) -> JSON:
    tag = {fields.text("key"): fields.text("value")}
    ops.set_experiment_tags(context.store, fields.text("experiment_id"), tag)
    return {}


def delete_experiment_tag(context: Context, fields: Fields) -> JSON:
    ops.delete_experiment_tag(context.store, fields.text("experiment_id"), fields.text("key"))
    return {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/experiments/create", create_experiment),
    ("GET", "/experiments/get", get_experiment),
    ("GET", "/experiments/get-by-name", get_experiment_by_name),
    ("POST", "/experiments/search", search_experiments),
    ("GET", "/experiments/search", search_experiments),
    ("POST", "/experiments/update", update_experiment),
    ("POST", "/experiments/delete", delete_experiment),
    ("POST", "/experiments/restore", restore_experiment),
    ("POST", "/experiments/set-experiment-tag", set_experiment_tag),
    ("POST", "/experiments/delete-experiment-tag", delete_experiment_tag),
]
