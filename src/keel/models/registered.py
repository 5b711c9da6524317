"""Registered models as a whole (MLflow's view): a name with a description, tags and aliases.

Keel's own commands work on versions; MLflow's registry API also creates empty models,
describes and tags them, and searches both models and versions. Searches load the
candidates and test them with the tracking filter language (``name = 'x'``,
``name LIKE 'fl%'``, ``run_id = '…'``, ``tags.k = 'v'``); registries hold few models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.models.aliases import aliases_of
from keel.models.references import check_name
from keel.models.registry import ModelVersion, _select, _version, list_models
from keel.store.schema import model_versions, registered_models
from keel.tracking.filters import Field, matches, parse_filter, parse_order_by, sort_records
from keel.tracking.search import decode_page_token, encode_page_token
from keel.workspace import Workspace

MAX_RESULTS_LIMIT = 10_000
# MLflow's client leaves prompts out of its searches with ``tags.`mlflow.prompt.is_prompt` != 'true'``;
# Keel registers no prompts, so every model answers that tag with "false".
PROMPT_TAG = "mlflow.prompt.is_prompt"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    tags: dict[str, str]
    created_at: int
    updated_at: int
    aliases: dict[str, str] = field(default_factory=dict)
    latest: ModelVersion | None = None


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_page_token: str | None


def create_registered_model(
    workspace: Workspace, name: str, *, description: str | None = None, tags: dict[str, str] | None = None
) -> RegisteredModel:
    """A model with no versions yet; Conflict when the name is taken."""
    check_name(name)
    now = now_ms()
    try:
        with workspace.store.write() as conn:
            conn.execute(
                insert(registered_models).values(
                    name=name,
                    description=description,
                    tags=json.dumps(tags or {}),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"model {name!r} already exists") from None
    return get_registered_model(workspace, name)


def get_registered_model(workspace: Workspace, name: str) -> RegisteredModel:
    with workspace.store.read() as conn:
        row = conn.execute(select(registered_models).where(registered_models.c.name == name)).first()
    if row is None:
        raise NotFound(f"no model named {name!r}", hint="see `keel model list`")
    latest = list_models(workspace, name)
    return RegisteredModel(
        name=row.name,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
        aliases=aliases_of(workspace, name),
        latest=latest[0] if latest else None,
    )


def update_registered_model(
    workspace: Workspace,
    name: str,
    *,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    remove_tags: list[str] | None = None,
) -> RegisteredModel:
    with workspace.store.write() as conn:
        row = conn.execute(
            select(registered_models.c.id, registered_models.c.tags).where(registered_models.c.name == name)
        ).first()
        if row is None:
            raise NotFound(f"no model named {name!r}", hint="see `keel model list`")
        tags = json.loads(row.tags) if row.tags else {}
        tags.update(set_tags or {})
        for key in remove_tags or []:
            tags.pop(key, None)
        values: dict[str, Any] = {"tags": json.dumps(tags), "updated_at": now_ms()}
        if description is not None:
            values["description"] = description
        conn.execute(update(registered_models).where(registered_models.c.id == row.id).values(**values))
    return get_registered_model(workspace, name)


def search_registered_models(
    workspace: Workspace,
    *,
    filter: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> Page:
    """Models matching ``filter`` (``name``, ``tags.K``), by name unless ordered otherwise."""
    with workspace.store.read() as conn:
        names = list(conn.execute(select(registered_models.c.name)).scalars())
    found = [get_registered_model(workspace, name) for name in names]
    return _page(
        found,
        filter=filter,
        order_by=order_by or [],
        default_order="name ASC",
        max_results=max_results,
        page_token=page_token,
        value_of=_model_field,
    )


def search_model_versions(
    workspace: Workspace,
    *,
    filter: str | None = None,
    order_by: list[str] | None = None,
    max_results: int = 10_000,
    page_token: str | None = None,
) -> Page:
    """Versions matching ``filter`` (``name``, ``version``, ``run_id``, ``source``, ``tags.K``)."""
    with workspace.store.read() as conn:
        found = [_version(row) for row in conn.execute(_select().order_by(model_versions.c.id))]
    return _page(
        found,
        filter=filter,
        order_by=order_by or [],
        default_order="name ASC, version_number DESC",
        max_results=max_results,
        page_token=page_token,
        value_of=_version_field,
    )


def _page(
    found: list[Any],
    *,
    filter: str | None,
    order_by: list[str],
    default_order: str,
    max_results: int,
    page_token: str | None,
    value_of: Any,
) -> Page:
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}")
    offset = decode_page_token(page_token)
    node = parse_filter(filter)
    if node is not None:
        found = [item for item in found if matches(node, partial(value_of, item))]
    ordered = sort_records(found, parse_order_by(order_by) + parse_order_by(default_order), value_of)
    more = len(ordered) > offset + max_results
    return Page(
        ordered[offset : offset + max_results], encode_page_token(offset + max_results) if more else None
    )


_MODEL_FIELDS: dict[str, Any] = {
    "name": lambda m: m.name,
    "description": lambda m: m.description,
    "creation_timestamp": lambda m: m.created_at,
    "last_updated_timestamp": lambda m: m.updated_at,
    "timestamp": lambda m: m.updated_at,
}
_VERSION_FIELDS: dict[str, Any] = {
    "name": lambda v: v.name,
    "version": lambda v: v.version,
    "version_number": lambda v: int(v.version) if v.version.isdigit() else None,
    "run_id": lambda v: v.job_name,
    "source": lambda v: v.source,
    "source_path": lambda v: v.source,
    "creation_timestamp": lambda v: v.created_at,
    "last_updated_timestamp": lambda v: v.updated_at,
}


def _model_field(model: RegisteredModel, field: Field) -> str | float | int | None:
    if field.kind == "tag":
        return model.tags.get(field.key, "false" if field.key == PROMPT_TAG else None)
    return _attribute(_MODEL_FIELDS, "registered models", model, field)


def _version_field(version: ModelVersion, field: Field) -> str | float | int | None:
    if field.kind == "tag":
        return version.tags.get(field.key, "false" if field.key == PROMPT_TAG else None)
    return _attribute(_VERSION_FIELDS, "model versions", version, field)


def _attribute(known: dict[str, Any], what: str, item: Any, field: Field) -> str | float | int | None:
    getter = known.get(field.key.lower())
    if field.kind != "attribute" or getter is None:
        raise InvalidInput(f"{what} cannot be searched by {field}", hint=f"known: {', '.join(sorted(known))}")
    value: str | float | int | None = getter(item)
    return value
