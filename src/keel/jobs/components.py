"""Registered components: ``keel component create`` and ``azureml:name:version`` references."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.jobs.content import DigestCache
from keel.jobs.snapshot import snapshot
from keel.specs import load_component
from keel.specs.resolved import Component
from keel.store.schema import components
from keel.workspace import Workspace


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    component: Component
    digest: str
    created_at: int


def register(workspace: Workspace, path: str | Path) -> tuple[Registered, bool]:
    """Register a component file (its code frozen); returns it and whether it is new."""
    component, _ = load_component(path, lookup_component=lookup(workspace))
    if component.kind == "command" and component.code is not None:
        scratch = workspace.config.root / "runs" / ".staging"
        digest = snapshot(Path(component.code), workspace.artifacts, DigestCache(workspace.store), scratch)
        component = component.model_copy(update={"code_digest": digest, "code": None})
    if (
        not component.name
        or not component.name.replace("_", "a").isalnum()
        or not component.name[0].isalpha()
    ):
        raise InvalidInput(
            f"component name {component.name!r} is not valid",
            hint="start with a letter; use lowercase letters, digits and '_'",
        )
    version = component.version or "1"
    component = component.model_copy(update={"version": version, "source": str(Path(path).resolve())})
    text = component.model_dump_json(exclude={"source"})
    digest = hashlib.sha256(text.encode()).hexdigest()
    existing = _find(workspace, component.name, version)
    if existing is not None:
        if existing.digest != digest:
            raise Conflict(
                f"component {component.name}:{version} already exists with different content",
                hint="components are immutable; give the new one another version",
            )
        return existing, False
    try:
        with workspace.store.write() as conn:
            conn.execute(
                insert(components).values(
                    name=component.name,
                    version=version,
                    spec=component.model_dump_json(),
                    digest=digest,
                    description=component.description,
                    created_at=now_ms(),
                )
            )
    except IntegrityError:
        return register(workspace, path)
    found = _find(workspace, component.name, version)
    assert found is not None
    return found, True


def lookup(workspace: Workspace):  # type: ignore[no-untyped-def]
    """The resolver's hook: ``(name, version or None for latest) -> Component``."""

    def find(name: str, version: str | None) -> Component:
        found = get(workspace, name, version)
        return found.component

    return find


def get(workspace: Workspace, name: str, version: str | None = None) -> Registered:
    found = _find(workspace, name, version)
    if found is None:
        what = f"{name}:{version}" if version else name
        raise NotFound(f"no component {what}", hint="see `keel component list`")
    return found


def list_components(workspace: Workspace) -> list[Registered]:
    query = select(components).order_by(components.c.name, components.c.created_at.desc())
    with workspace.store.read() as conn:
        return [_registered(row) for row in conn.execute(query)]


def _find(workspace: Workspace, name: str, version: str | None) -> Registered | None:
    query = select(components).where(components.c.name == name)
    query = (
        query.where(components.c.version == version)
        if version
        else query.order_by(components.c.created_at.desc(), components.c.id.desc())
    )
    with workspace.store.read() as conn:
        row = conn.execute(query.limit(1)).first()
    return _registered(row) if row is not None else None


def _registered(row: object) -> Registered:
    return Registered(
        name=row.name,  # type: ignore[attr-defined]
        version=row.version,  # type: ignore[attr-defined]
        component=Component.model_validate_json(row.spec),  # type: ignore[attr-defined]
        digest=row.digest,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
    )
