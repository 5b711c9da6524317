"""Aliases: names people give to versions (``@champion``), moved by hand, resolved everywhere.

An alias belongs to one model and points at one of its versions; setting it again
moves it. ``latest`` is not an alias but a label Keel computes (the newest version
not archived), so it cannot be set.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from keel.clock import now_ms
from keel.errors import NotFound
from keel.models.references import check_alias
from keel.store.schema import model_aliases, model_versions, registered_models
from keel.workspace import Workspace


def set_alias(workspace: Workspace, name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version`` (which must exist)."""
    check_alias(alias)
    with workspace.store.write() as conn:
        row = conn.execute(
            select(model_versions.c.id, model_versions.c.model_id)
            .join(registered_models, registered_models.c.id == model_versions.c.model_id)
            .where(registered_models.c.name == name, model_versions.c.version == version)
        ).first()
        if row is None:
            raise NotFound(
                f"no version {version} of model {name}", hint=f"see `keel model list --name {name}`"
            )
        key = (model_aliases.c.model_id == row.model_id) & (model_aliases.c.alias == alias)
        moved = conn.execute(update(model_aliases).where(key).values(version_id=row.id, updated_at=now_ms()))
        if not moved.rowcount:
            conn.execute(
                insert(model_aliases).values(
                    model_id=row.model_id, alias=alias, version_id=row.id, updated_at=now_ms()
                )
            )


def delete_alias(workspace: Workspace, name: str, alias: str) -> None:
    with workspace.store.write() as conn:
        model_id = conn.execute(
            select(registered_models.c.id).where(registered_models.c.name == name)
        ).scalar()
        if model_id is None:
            raise NotFound(f"no model named {name!r}", hint="see `keel model list`")
        gone = conn.execute(
            delete(model_aliases).where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
        )
    if not gone.rowcount:
        raise NotFound(f"model {name} has no alias @{alias}")


def aliases_of(workspace: Workspace, name: str) -> dict[str, str]:
    """Each alias of ``name`` and the version it points at, by alias."""
    query = (
        select(model_aliases.c.alias, model_versions.c.version)
        .join(model_versions, model_versions.c.id == model_aliases.c.version_id)
        .join(registered_models, registered_models.c.id == model_aliases.c.model_id)
        .where(registered_models.c.name == name)
        .order_by(model_aliases.c.alias)
    )
    with workspace.store.read() as conn:
        return {row.alias: row.version for row in conn.execute(query)}
