"""Data assets from Python: thin functions over :mod:`keel.data.assets`, in the SDK's workspace.

    import keel.data

    keel.data.create_asset("flights", "./raw", description="monthly flights")
    asset = keel.data.get_asset("flights@latest")      # or "flights:3", "azureml:flights:3"
    for version in keel.data.list_assets("flights"):
        print(version.version, version.digest)
    keel.data.download_asset("flights:3", "./out")

The workspace is the one the tracking SDK uses (``keel.set_workspace``), unless a
``workspace`` is given (an opened :class:`~keel.workspace.Workspace` or a path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from keel.data.assets import (
    DataAsset,
    Request,
    download,
    parse_reference,
    register,
    resolve_asset,
    set_archived,
)
from keel.data.assets import list_assets as _list
from keel.workspace import Workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None


def create_asset(
    name: str,
    path: str | os.PathLike[str],
    *,
    type: str = "uri_folder",
    version: str | int | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    workspace: WorkspaceArg = None,
) -> DataAsset:
    """Register a version (``az ml data create``): local data is uploaded, URIs are referenced.

    Creating an existing ``name:version`` again returns it when the content is the
    same and raises :class:`~keel.errors.Conflict` otherwise.
    """
    request = Request(
        name=name,
        path=os.fspath(path),
        type=type,
        version=None if version is None else str(version),
        description=description,
        tags=dict(tags) if tags else None,
    )
    asset, _ = register(_workspace(workspace), request)
    return asset


def get_asset(reference: str, *, workspace: WorkspaceArg = None) -> DataAsset:
    """``name``, ``name:version``, ``name@latest`` or ``azureml:name:version``."""
    return resolve_asset(_workspace(workspace), reference)


def list_assets(
    name: str | None = None, *, include_archived: bool = False, workspace: WorkspaceArg = None
) -> list[DataAsset]:
    """Every version of ``name`` (newest first), or the latest version of each asset."""
    return _list(_workspace(workspace), name, include_archived=include_archived)


def archive_asset(reference: str, *, workspace: WorkspaceArg = None) -> int:
    """Archive ``name:version``, or every version of ``name``; returns how many."""
    name, version = parse_reference(reference)
    return set_archived(_workspace(workspace), name, version, archived=True)


def restore_asset(reference: str, *, workspace: WorkspaceArg = None) -> int:
    """Restore ``name:version``, or every version of ``name``; returns how many."""
    name, version = parse_reference(reference)
    return set_archived(_workspace(workspace), name, version, archived=False)


def download_asset(
    reference: str, path: str | os.PathLike[str] = ".", *, workspace: WorkspaceArg = None
) -> Path:
    """Copy a version's files to ``path/<name>`` (each checked against the manifest)."""
    return download(_workspace(workspace), reference, Path(path))


def _workspace(workspace: WorkspaceArg) -> Workspace:
    if isinstance(workspace, Workspace):
        return workspace
    if workspace is not None:
        return Workspace.open(workspace)
    from keel.tracking.sdk import current_workspace

    return current_workspace()
