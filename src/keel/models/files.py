"""A model version's files: its manifest (checked against the digest on record), and copies out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from keel.errors import Conflict, NotFound
from keel.models.registry import ModelVersion
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.data.manifest import Manifest


def manifest_of(workspace: Workspace, model: ModelVersion) -> Manifest:
    """The version's manifest, refused unless it is the one whose digest was recorded."""
    from keel.data.manifest import Manifest

    try:
        manifest = Manifest.from_bytes(workspace.artifacts.read_bytes(model.manifest_uri))
    except NotFound:
        raise NotFound(
            f"the files of model {model.name}:{model.version} are gone from the workspace store "
            f"(no manifest at {model.manifest_uri})"
        ) from None
    if manifest.digest != model.digest:
        raise Conflict(
            f"the manifest of model {model.name}:{model.version} no longer matches the digest "
            "recorded at registration; refusing to use it",
            hint="register the model again from its source",
        )
    return manifest


def changed_in_store(model: ModelVersion, problem: Conflict) -> Conflict:
    """A stored file's bytes differ from its registered hash (copy_checked names the file)."""
    return Conflict(
        f"model {model.name}:{model.version}: {problem.message}; nothing was loaded",
        hint="the stored file changed after registration: register the model again from its source",
    )


def download(workspace: Workspace, model: ModelVersion, destination: Path) -> Path:
    """Copy the version's files to ``destination/<name>``, each checked against its hash."""
    from keel.data.datastores import storage_errors
    from keel.data.locations import resolve_location
    from keel.data.manifest import copy_checked

    manifest = manifest_of(workspace, model)
    target = destination / model.name
    root = resolve_location(workspace, manifest.root)
    try:
        with storage_errors(root.datastore or root.uri):
            copy_checked(manifest, root, target)
    except Conflict as exc:
        raise changed_in_store(model, exc) from None
    return target
