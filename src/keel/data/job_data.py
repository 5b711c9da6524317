"""Data assets and datastores in jobs: inputs that name them, outputs that become them.

* Inputs: ``path: azureml:<asset>:<version>`` (or ``@latest``) and
  ``azureml://datastores/<registered datastore>/paths/…`` are resolved by
  :func:`input_plugin`, which the runner hands to its
  :class:`keel.jobs.inputs.InputResolver`. The value's digest is the version's
  manifest digest, so reuse keys follow content; its URI is the exact
  ``azureml:name:version`` that was read, for lineage.
* Outputs declared with a ``name`` (and optionally a ``version``) are registered
  as data asset versions when their step completes (:func:`register_outputs`),
  pointing at the committed content, with the producing job recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from keel.data.assets import ASSET_TYPES, Request, fetch, materialize, register, resolve_asset
from keel.data.datastores import WORKSPACE_DATASTORES, storage_errors
from keel.data.locations import datastore_uri, resolve_location
from keel.data.manifest import Expect, is_pattern, scan
from keel.errors import InvalidInput, KeelError
from keel.jobs.content import DigestCache
from keel.jobs.graph import Node, Value
from keel.specs.bindings import is_asset_reference
from keel.specs.models import OutputDecl
from keel.specs.resolved import DataRef
from keel.workspace import Workspace

_DATASTORE = re.compile(r"^azureml://datastores/([^/]+)/paths/")
ASSET_TAG = "keel.data_asset."  # + output name: the version a step's output was registered as


def input_plugin(
    workspace: Workspace, cache: Path, digests: DigestCache
) -> Callable[[DataRef], Value | None]:
    """The resolver plugin for data asset references and registered datastores' URIs."""

    def resolve(ref: DataRef) -> Value | None:
        if is_asset_reference(ref.path):
            return _asset_input(workspace, ref, cache)
        match = _DATASTORE.match(ref.path)
        if match is not None and match.group(1) not in WORKSPACE_DATASTORES:
            return _datastore_input(workspace, ref, cache, digests)
        return None

    return resolve


def _asset_input(workspace: Workspace, ref: DataRef, cache: Path) -> Value:
    asset = resolve_asset(workspace, ref.path)
    if (ref.type == "uri_file") != (asset.type == "uri_file"):
        raise InvalidInput(f"{asset.reference} is a {asset.type}, but the input is a {ref.type}")
    path = materialize(workspace, asset, cache)
    return Value(type=ref.type, path=path, uri=asset.reference, digest=asset.digest)


def _datastore_input(workspace: Workspace, ref: DataRef, cache: Path, digests: DigestCache) -> Value:
    """Data on a registered datastore: used in place when local, else fetched once per digest."""
    location = resolve_location(workspace, ref.path)
    expect: Expect = "file" if ref.type == "uri_file" else "any" if is_pattern(location.path) else "folder"
    with storage_errors(location.datastore or location.uri):
        manifest = scan(location, digests=digests, expect=expect)
    if location.is_local and not is_pattern(location.path):
        return Value(type=ref.type, path=Path(location.path), uri=location.uri, digest=manifest.digest)
    folder = fetch(workspace, manifest, cache)
    path = folder / manifest.entries[0].path if ref.type == "uri_file" else folder
    return Value(type=ref.type, path=path, uri=location.uri, digest=manifest.digest)


def register_outputs(workspace: Workspace, node: Node) -> str | None:
    """Register the node's outputs that declare a ``name``; returns why that failed, or None."""
    from keel.tracking.jobs import set_tags

    registered: dict[str, str] = {}
    for output, binding in node.step.outputs.items():
        decl = binding.decl
        if decl.name is None:
            continue
        value = node.outputs.get(output)
        try:
            request = _request(node, output, value, decl)
            asset, _ = register(workspace, request)
        except KeelError as exc:
            return f"registering output {output!r} as data asset {decl.name!r}: {exc}"
        registered[ASSET_TAG + output] = f"{asset.name}:{asset.version}"
    if registered:
        set_tags(workspace.store, node.job_id, registered)
    return None


def _request(node: Node, output: str, value: Value | None, decl: OutputDecl) -> Request:
    kind, version = decl.type, decl.version
    if kind not in ASSET_TYPES:
        raise InvalidInput(f"a {kind} output cannot be a data asset (types: {', '.join(ASSET_TYPES)})")
    if value is None or not value.is_data or value.uri is None:
        raise InvalidInput(f"output {output!r} holds no data")
    path = value.uri if "://" in value.uri else datastore_uri(WORKSPACE_DATASTORES[0], value.uri)
    return Request(
        name=decl.name or output,
        path=path,
        type=kind,
        version=None if version is None else str(version),
        description=decl.description,
        job_id=node.job_id,
        reuse_latest=version is None,
    )
