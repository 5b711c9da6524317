"""What an invocation scores: a local path, a data asset version or a datastore path, made local.

    --input ./data/march.parquet                      a local file or folder
    --input azureml:flights-march:3                   a data asset version (or @latest)
    --input azureml://datastores/lake/paths/2024/03   a path in a registered datastore

``check_input`` runs when the invocation is made (cheap: is it there?); ``resolve_input``
runs in the job and returns a local path with the URI and content digest that the
job records as its input, so lineage leads from the predictions back to the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keel.data.tabular import MLTABLE_FILE
from keel.errors import InvalidInput, NotFound
from keel.workspace import Workspace

INPUT_TYPES = ("uri_file", "uri_folder", "mltable")


@dataclass(frozen=True)
class InputData:
    """The input as the job reads it."""

    path: Path  # a local file or folder
    type: str  # uri_file | uri_folder | mltable
    uri: str  # what was read, for lineage: azureml:name:version, a datastore URI, or a local path
    digest: str | None


def check_input(workspace: Workspace, text: str, input_type: str | None, *, base: Path | None = None) -> str:
    """The input as the job will name it (a local path made absolute); refuses what is not there."""
    from keel.data.locations import resolve_location

    if input_type is not None and input_type not in INPUT_TYPES:
        raise InvalidInput(f"unknown input type {input_type!r}", hint=f"one of {', '.join(INPUT_TYPES)}")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("give the data to score with --input (a path, azureml:NAME:VERSION or a URI)")
    if _is_asset(text):
        from keel.data.assets import resolve_asset

        resolve_asset(workspace, text)
        return text
    location = resolve_location(workspace, text, base=base)
    if location.datastore is None and not location.is_local:
        raise InvalidInput(
            f"{text}: batch endpoints read local paths, data assets and registered datastores",
            hint="register a datastore for it: keel datastore create",
        )
    if not location.fs.exists(location.path):
        raise NotFound(f"no file or folder at {location.uri}")
    return location.uri


def resolve_input(workspace: Workspace, text: str, input_type: str | None, cache: Path) -> InputData:
    """A local path holding the input, checked against what was registered where it applies."""
    if _is_asset(text):
        return _asset_input(workspace, text, input_type, cache)
    if text.startswith("azureml://"):
        return _datastore_input(workspace, text, input_type, cache)
    from keel.data.locations import resolve_location

    return _local_input(workspace, Path(resolve_location(workspace, text).path), input_type)


def _is_asset(text: str) -> bool:
    return text.startswith("azureml:") and not text.startswith("azureml://")


def _asset_input(workspace: Workspace, text: str, input_type: str | None, cache: Path) -> InputData:
    from keel.data.assets import materialize, resolve_asset

    asset = resolve_asset(workspace, text)
    path = materialize(workspace, asset, cache)
    return InputData(path, input_type or asset.type, asset.reference, asset.digest)


def _datastore_input(workspace: Workspace, text: str, input_type: str | None, cache: Path) -> InputData:
    from keel.data.job_data import input_plugin
    from keel.data.locations import resolve_location
    from keel.jobs.content import DigestCache
    from keel.specs.resolved import DataRef

    kind = input_type
    if kind is None:
        location = resolve_location(workspace, text)
        kind = "uri_folder" if location.fs.isdir(location.path) else "uri_file"
    resolver = input_plugin(workspace, cache, DigestCache(workspace.store))
    value = resolver(DataRef(type="uri_file" if kind == "uri_file" else "uri_folder", path=text))
    if value is None or value.path is None:
        raise InvalidInput(f"{text} is not a path in a registered datastore")
    return InputData(value.path, _refined(value.path, kind), value.uri or text, value.digest)


def _local_input(workspace: Workspace, path: Path, input_type: str | None) -> InputData:
    from keel.jobs.content import DigestCache

    if not path.exists():
        raise NotFound(f"no file or folder at {path}")
    kind = input_type or ("uri_folder" if path.is_dir() else "uri_file")
    if (kind == "uri_file") != path.is_file():
        raise InvalidInput(
            f"{path} is {'a file' if path.is_file() else 'a folder'}, but the input is a {kind}"
        )
    digest = DigestCache(workspace.store).digest(path)
    return InputData(path, _refined(path, kind), str(path), digest)


def _refined(path: Path, kind: str) -> str:
    """A folder with an MLTable file at its top is read as that table."""
    if kind == "uri_folder" and (path / MLTABLE_FILE).is_file():
        return "mltable"
    return kind
