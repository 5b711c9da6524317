"""MLflow's model registry over REST: registered models, versions, tags and aliases.

Enough of the API for the unmodified ``mlflow`` client to register models
(``log_model(..., registered_model_name=...)``, ``mlflow.register_model``), move
aliases, and load ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS``. Versions are
Keel's registry versions, so their files are snapshotted into the content store with
a manifest of hashes, and are READY when the create call returns. The server
registers only files it stores itself (run and logged-model artifacts, job outputs,
the workspace's datastores): a client cannot make it read an arbitrary path.
Stages are not supported (aliases replace them); versions are archived, not deleted.
"""

from __future__ import annotations

import re

from keel.errors import PermissionDenied
from keel.models import aliases, registered
from keel.models import registry as versions
from keel.models.registry import ModelVersion, Request
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, Handler
from keel.tracking.jobs import get_job

DEFAULT_MAX_RESULTS = 100
_STORED = re.compile(r"^azureml://datastores/workspaceblobstore/paths/(.+)$")
_INSIDE = ("runs:/", "models:/m-", "mlflow-artifacts:", "azureml://jobs/", "azureml://datastores/")


# -- rendering -------------------------------------------------------------------------------


def _version(context: Context, found: ModelVersion, version_aliases: list[str] | None = None) -> JSON:
    if version_aliases is None:
        version_aliases = [
            a for a, v in aliases.aliases_of(context.workspace, found.name).items() if v == found.version
        ]
    answer: JSON = {
        "name": found.name,
        "version": found.version,
        "creation_timestamp": found.created_at,
        "last_updated_timestamp": found.updated_at,
        "current_stage": "Archived" if found.archived else "None",
        "source": found.source or download_uri(found),
        "status": "READY",
        "tags": render.pairs(found.tags),
        "aliases": version_aliases,
    }
    if found.description is not None:
        answer["description"] = found.description
    if found.job_name is not None:
        answer["run_id"] = found.job_name
    return answer


def _model(context: Context, found: registered.RegisteredModel) -> JSON:
    answer: JSON = {
        "name": found.name,
        "creation_timestamp": found.created_at,
        "last_updated_timestamp": found.updated_at,
        "tags": render.pairs(found.tags),
        "aliases": [{"alias": alias, "version": version} for alias, version in found.aliases.items()],
    }
    if found.description is not None:
        answer["description"] = found.description
    if found.latest is not None:
        on_latest = [a for a, v in found.aliases.items() if v == found.latest.version]
        answer["latest_versions"] = [_version(context, found.latest, on_latest)]
    return answer


def download_uri(found: ModelVersion) -> str:
    """Where a client downloads a version's files: through the artifact proxy."""
    match = _STORED.match(found.path)
    return render.artifact_uri(match.group(1)) if match else found.path


# -- registered models -----------------------------------------------------------------------


def create_registered_model(context: Context, fields: Fields) -> JSON:
    found = registered.create_registered_model(
        context.workspace,
        fields.text("name"),
        description=fields.optional_text("description"),
        tags=fields.pairs("tags"),
    )
    return {"registered_model": _model(context, found)}


def get_registered_model(context: Context, fields: Fields) -> JSON:
    return {
        "registered_model": _model(
            context, registered.get_registered_model(context.workspace, fields.text("name"))
        )
    }


def update_registered_model(context: Context, fields: Fields) -> JSON:
    found = registered.update_registered_model(
        context.workspace, fields.text("name"), description=fields.optional_text("description")
    )
    return {"registered_model": _model(context, found)}


def search_registered_models(context: Context, fields: Fields) -> JSON:
    page = registered.search_registered_models(
        context.workspace,
        filter=fields.optional_text("filter"),
        order_by=fields.texts("order_by"),
        max_results=fields.int64("max_results") or DEFAULT_MAX_RESULTS,
        page_token=fields.optional_text("page_token"),
    )
    return render.page("registered_models", [_model(context, m) for m in page.items], page.next_page_token)


def get_latest_versions(context: Context, fields: Fields) -> JSON:
    """The newest version; Keel has no stages, so only "None" (or no stage) finds it."""
    found = registered.get_registered_model(context.workspace, fields.text("name"))
    stages = [stage.lower() for stage in fields.texts("stages")]
    if found.latest is None or (stages and "none" not in stages):
        return {"model_versions": []}
    return {"model_versions": [_version(context, found.latest)]}


def set_registered_model_tag(context: Context, fields: Fields) -> JSON:
    tags = {fields.text("key"): fields.text("value")}
    registered.update_registered_model(context.workspace, fields.text("name"), set_tags=tags)
    return {}


def delete_registered_model_tag(context: Context, fields: Fields) -> JSON:
    registered.update_registered_model(
        context.workspace, fields.text("name"), remove_tags=[fields.text("key")]
    )
    return {}


# -- versions --------------------------------------------------------------------------------


def create_model_version(context: Context, fields: Fields) -> JSON:
    source = _inside_source(context, fields.text("source"), fields.optional_text("run_id"))
    request = Request(
        name=fields.text("name"),
        path=source,
        description=fields.optional_text("description"),
        tags=fields.pairs("tags"),
        job_name=fields.optional_text("run_id"),
    )
    found, _ = versions.register(context.workspace, request)
    return {"model_version": _version(context, found, [])}


def _inside_source(context: Context, source: str, run_id: str | None) -> str:
    """The source as a path inside the workspace; a run's own artifact URI becomes runs:/."""
    if source.startswith(_INSIDE):
        return source
    if run_id:
        root = render.artifact_uri(get_job(context.store, run_id).artifact_location).rstrip("/")
        if source == root or source.startswith(root + "/"):
            return f"runs:/{run_id}/{source[len(root) :].lstrip('/')}"
    raise PermissionDenied(
        f"the server registers only files it stores; {source[:200]!r} is not one of them",
        hint="log the model to a run first, or register local files with `keel model create`",
    )


def get_model_version(context: Context, fields: Fields) -> JSON:
    found = versions.get_model_version(context.workspace, fields.text("name"), fields.text("version"))
    return {"model_version": _version(context, found)}


def update_model_version(context: Context, fields: Fields) -> JSON:
    found = versions.update_model_version(
        context.workspace,
        fields.text("name"),
        fields.text("version"),
        description=fields.optional_text("description"),
    )
    return {"model_version": _version(context, found)}


def search_model_versions(context: Context, fields: Fields) -> JSON:
    page = registered.search_model_versions(
        context.workspace,
        filter=fields.optional_text("filter"),
        order_by=fields.texts("order_by"),
        max_results=fields.int64("max_results") or 10_000,
        page_token=fields.optional_text("page_token"),
    )
    return render.page("model_versions", [_version(context, v) for v in page.items], page.next_page_token)


def get_download_uri(context: Context, fields: Fields) -> JSON:
    found = versions.get_model_version(context.workspace, fields.text("name"), fields.text("version"))
    return {"artifact_uri": download_uri(found)}


def set_model_version_tag(context: Context, fields: Fields) -> JSON:
    tags = {fields.text("key"): fields.text("value")}
    versions.update_model_version(
        context.workspace, fields.text("name"), fields.text("version"), set_tags=tags
    )
    return {}


def delete_model_version_tag(context: Context, fields: Fields) -> JSON:
    key = [fields.text("key")]
    versions.update_model_version(
        context.workspace, fields.text("name"), fields.text("version"), remove_tags=key
    )
    return {}


# -- aliases ---------------------------------------------------------------------------------


def set_alias(context: Context, fields: Fields) -> JSON:
    aliases.set_alias(context.workspace, fields.text("name"), fields.text("alias"), fields.text("version"))
    return {}


def delete_alias(context: Context, fields: Fields) -> JSON:
    aliases.delete_alias(context.workspace, fields.text("name"), fields.text("alias"))
    return {}


def get_by_alias(context: Context, fields: Fields) -> JSON:
    from keel.models.references import Reference

    name, alias = fields.text("name"), fields.text("alias")
    found = versions.resolve_parsed(context.workspace, Reference(name, label=alias))
    return {"model_version": _version(context, found)}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/registered-models/create", create_registered_model),
    ("GET", "/registered-models/get", get_registered_model),
    ("PATCH", "/registered-models/update", update_registered_model),
    ("GET", "/registered-models/search", search_registered_models),
    ("POST", "/registered-models/get-latest-versions", get_latest_versions),
    ("GET", "/registered-models/get-latest-versions", get_latest_versions),
    ("POST", "/registered-models/set-tag", set_registered_model_tag),
    ("DELETE", "/registered-models/delete-tag", delete_registered_model_tag),
    ("POST", "/registered-models/alias", set_alias),
    ("DELETE", "/registered-models/alias", delete_alias),
    ("GET", "/registered-models/alias", get_by_alias),
    ("POST", "/model-versions/create", create_model_version),
    ("GET", "/model-versions/get", get_model_version),
    ("PATCH", "/model-versions/update", update_model_version),
    ("GET", "/model-versions/search", search_model_versions),
    ("GET", "/model-versions/get-download-uri", get_download_uri),
    ("POST", "/model-versions/set-tag", set_model_version_tag),
    ("DELETE", "/model-versions/delete-tag", delete_model_version_tag),
]
