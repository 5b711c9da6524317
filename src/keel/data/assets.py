"""Data assets: named, immutable versions of data, with a manifest and a profile.

    keel data create -f data.yml                 Azure ML's data YAML (name, version, type, path…)
    keel data create --name flights --path ./raw --type uri_folder

A local path is uploaded into the workspace's content store (``cas/<hex>``, shared
with job outputs and code snapshots, so identical data is stored once) and the
version records ``azureml://datastores/workspaceblobstore/paths/cas/<hex>``. A
datastore URI or fsspec URL is a reference: nothing is copied. Either way the
version records a manifest (:mod:`keel.data.manifest`) and its digest, which is
what job reuse keys and lineage use; reading the data checks it against the
manifest, so a reference that changed underneath is caught rather than trusted.

Versions are immutable: creating ``name:version`` again is a no-op when it names
the same content and a Conflict otherwise. Without a version, the next integer is
taken. ``@latest`` is the newest active version; archived versions are hidden from
lists and ``@latest`` but still resolve by explicit version.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.data.datastores import WORKSPACE_DATASTORE, storage_errors
from keel.data.locations import Location, datastore_uri, resolve_location
from keel.data.manifest import Expect, Manifest, copy_checked, is_pattern, scan
from keel.errors import Conflict, InvalidInput, NotFound
from keel.jobs.content import DigestCache, cas_path, commit, is_committed, staging_folder
from keel.store.schema import data_assets, jobs
from keel.tracking.validation import text_values
from keel.workspace import Workspace

_log = logging.getLogger(__name__)
ASSET_TYPES = ("uri_file", "uri_folder", "mltable")
AssetType = Literal["uri_file", "uri_folder", "mltable"]
MANIFESTS = "data/manifests"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_EXPECT: dict[str, Expect] = {"uri_file": "file", "uri_folder": "folder", "mltable": "folder"}


class DataSpec(BaseModel):
    """Azure ML's data asset YAML (``$schema: …/data.schema.json``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    version: str | int | None = None
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None
    type: AssetType = "uri_folder"
    path: str


@dataclass(frozen=True)
class DataAsset:
    """One version of a data asset, as recorded."""

    name: str
    version: str
    type: str
    path: str  # the stored URI: the snapshot Keel uploaded, or the reference as given
    digest: str | None
    manifest_uri: str | None  # relative to the workspace's artifact root
    profile: dict[str, Any] | None
    job_name: str | None  # the job that produced it, if a job did
    created_at: int
    description: str | None = None
    tags: dict[str, str] | None = None
    size: int | None = None
    file_count: int | None = None
    lifecycle_stage: str = "active"

    @property
    def reference(self) -> str:
        """How jobs name this version: ``azureml:name:version``."""
        return f"azureml:{self.name}:{self.version}"

    @property
    def archived(self) -> bool:
        return self.lifecycle_stage == "archived"

    def location(self, workspace: Workspace) -> Location:
        """Where the data is (for a pattern, the pattern itself)."""
        return resolve_location(workspace, self.path)

    def manifest(self, workspace: Workspace) -> Manifest:
        if self.manifest_uri is None:
            raise NotFound(f"data asset {self.name}:{self.version} has no manifest")
        return Manifest.from_bytes(workspace.artifacts.read_bytes(self.manifest_uri))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "path": self.path,
            "description": self.description,
            "tags": self.tags or {},
            "digest": self.digest,
            "size": self.size,
            "file_count": self.file_count,
            "manifest_uri": self.manifest_uri,
            "job": self.job_name,
            "archived": self.archived,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Request:
    """What to register (the CLI's flags, a YAML file or a job output, all end up here)."""

    name: str
    path: str
    type: str = "uri_folder"
    version: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    job_id: int | None = None
    reuse_latest: bool = False  # an identical latest version is returned instead of a new one
    # Called with the connection and the new version inside the transaction that records it,
    # so another record (the copy engine's watermark) commits with the version or not at all.
    in_transaction: Callable[[Connection, str], None] | None = field(default=None, compare=False)


# -- creating ------------------------------------------------------------------------------


def register(workspace: Workspace, request: Request, *, base: Path | None = None) -> tuple[DataAsset, bool]:
    """Register a version; returns it and whether it is new. Nothing is written on error."""
    _check(request)
    location, upload = _source(workspace, request.path, base)
    manifest = _manifest(workspace, location, request.type)
    stored_path = _snapshot_uri(manifest, request.type) if upload else location.uri
    if request.version is not None:
        existing = _find(workspace, request.name, request.version)
        if existing is not None:
            return _same_or_conflict(existing, request.type, stored_path, manifest.digest), False
    if request.reuse_latest:
        latest = _find(workspace, request.name, None)
        if latest is not None and (latest.path, latest.digest) == (stored_path, manifest.digest):
            return latest, False
    if upload:
        _upload(workspace, manifest)
        manifest = replace(manifest, root=_root_of(stored_path, request.type))
    manifest_uri = _write_manifest(workspace, manifest)
    profile = _profile(workspace, stored_path, request.type)
    return _insert(
        workspace,
        request,
        stored_path=stored_path,
        manifest=manifest,
        manifest_uri=manifest_uri,
        profile=profile,
    )


def create_from_file(
    workspace: Workspace, file: Path, *, overrides: Mapping[str, str | None] | None = None
) -> tuple[DataAsset, bool]:
    """Register the data a YAML file describes; problems name the file, line and field.

    ``overrides`` (the command line's ``--name``, ``--version``…) win over the file's
    values; a local ``path`` given there is relative to the current folder.
    """
    from pydantic import ValidationError

    from keel.specs.checks import File, first_problem
    from keel.specs.source import Source, read_yaml

    raw = read_yaml(file)
    source = Source(file, raw)
    if not isinstance(raw, dict):
        raise source.error((), "a data file must be a mapping (name, version, type, path…)")
    for key, value in (overrides or {}).items():
        if value is not None:
            local = key == "path" and _URI.match(value) is None and not value.startswith("azureml:")
            raw[key] = str(Path(value).resolve()) if local else value
    try:
        spec = DataSpec.model_validate(raw)
    except ValidationError as exc:
        raise first_problem(exc, DataSpec, File(source, file.parent), ()) from None
    request = Request(
        name=spec.name,
        path=spec.path,
        type=spec.type,
        version=None if spec.version is None else str(spec.version),
        description=spec.description,
        tags=text_values(spec.tags),
    )
    try:
        _check(request)
    except InvalidInput as exc:
        field = "version" if "version" in exc.message else "name"
        raise source.error((field,), exc.message, hint=exc.hint) from None
    return register(workspace, request, base=file.resolve().parent)


def _check(request: Request) -> None:
    if not _NAME.match(request.name):
        raise InvalidInput(
            f"data asset name {request.name!r} is not valid",
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    if request.version is not None and (not _VERSION.match(request.version) or request.version == "latest"):
        raise InvalidInput(
            f"data asset version {request.version!r} is not valid",
            hint="use letters, digits, '-', '_' and '.'; 'latest' is a label, not a version",
        )
    if request.type not in ASSET_TYPES:
        raise InvalidInput(f"unknown data type {request.type!r}", hint=f"one of {', '.join(ASSET_TYPES)}")


def _source(workspace: Workspace, path: str, base: Path | None) -> tuple[Location, bool]:
    """Where the data is, and whether it is local (to be uploaded) rather than a reference."""
    if path.startswith("azureml:") and not path.startswith("azureml://"):
        raise InvalidInput(f"{path} is a data asset reference; give the path of the data itself")
    location = resolve_location(workspace, path, base=base)
    upload = _URI.match(path) is None or path.lower().startswith("file://")
    if upload and not is_pattern(location.path) and not Path(location.path).exists():
        raise NotFound(f"no file or folder at {location.path}")
    return location, upload


def _manifest(workspace: Workspace, location: Location, kind: str) -> Manifest:
    with storage_errors(location.datastore or location.uri):
        manifest = scan(location, digests=DigestCache(workspace.store), expect=_EXPECT[kind])
    if kind == "mltable" and not any(entry.path == "MLTable" for entry in manifest.entries):
        raise InvalidInput(f"{location.uri} holds no MLTable file; an mltable asset is a folder with one")
    return manifest


def _same_or_conflict(existing: DataAsset, kind: str, stored_path: str, digest: str) -> DataAsset:
    if (existing.type, existing.path, existing.digest) == (kind, stored_path, digest):
        return existing
    differs = "type" if existing.type != kind else "content" if existing.digest != digest else "path"
    raise Conflict(
        f"data asset {existing.name}:{existing.version} already exists with a different {differs}",
        hint="versions are immutable; give the new one another version, or omit it to take the next",
    )


def _snapshot_uri(manifest: Manifest, kind: str) -> str:
    """Where local data lives once uploaded: the content store, addressed by its digest."""
    relative = cas_path(manifest.digest)
    if kind == "uri_file":
        relative = f"{relative}/{manifest.entries[0].path}"
    return datastore_uri(WORKSPACE_DATASTORE, relative)


def _upload(workspace: Workspace, manifest: Manifest) -> None:
    """Copy local data into the content store, checked as it streams (once per distinct content)."""
    artifacts = workspace.artifacts
    if is_committed(artifacts, cas_path(manifest.digest)):
        return
    staged = staging_folder(artifacts, workspace.config.root / "runs" / ".staging")
    try:
        copy_checked(manifest, resolve_location(workspace, manifest.root), staged)
        commit(artifacts, staged, manifest.digest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _root_of(stored_path: str, kind: str) -> str:
    return stored_path.rsplit("/", 1)[0] if kind == "uri_file" else stored_path


def _write_manifest(workspace: Workspace, manifest: Manifest) -> str:
    import hashlib

    data = manifest.to_bytes()
    relative = f"{MANIFESTS}/{hashlib.sha256(data).hexdigest()}.jsonl"
    if not workspace.artifacts.exists(relative):
        workspace.artifacts.write_bytes(relative, data)
    return relative


def snapshot(
    workspace: Workspace, location: Location, *, expect: Expect = "any"
) -> tuple[str, Manifest, str]:
    """Copy the files at ``location`` into the content store (once per content) and save their
    manifest; returns the snapshot folder's URI, the manifest rooted there, and the manifest's
    URI. Other registries (models) keep their files the way data assets do."""
    with storage_errors(location.datastore or location.uri):
        manifest = scan(location, digests=DigestCache(workspace.store), expect=expect)
    _upload(workspace, manifest)
    stored = datastore_uri(WORKSPACE_DATASTORE, cas_path(manifest.digest))
    manifest = replace(manifest, root=stored)
    return stored, manifest, _write_manifest(workspace, manifest)


def _profile(workspace: Workspace, stored_path: str, kind: str) -> dict[str, Any] | None:
    """The profile of tabular data; a profiler that breaks on odd data does not block registration."""
    from keel.data.profiles import profile_of
    from keel.errors import KeelError

    try:
        return profile_of(resolve_location(workspace, stored_path), kind)
    except KeelError:
        raise
    except Exception as exc:  # the data is registered without a profile, and the log says why
        _log.warning("no profile for %s: %s: %s", stored_path, type(exc).__name__, exc)
        return None


def _insert(
    workspace: Workspace,
    request: Request,
    *,
    stored_path: str,
    manifest: Manifest,
    manifest_uri: str,
    profile: dict[str, Any] | None,
) -> tuple[DataAsset, bool]:
    row = _row(request, stored_path, manifest, manifest_uri, profile)
    for _attempt in range(10):  # two writers may take the same next version; the schema decides
        try:
            with workspace.store.write() as conn:
                version = request.version or _next_version(conn, request.name)
                conn.execute(insert(data_assets).values(**row, version=version, created_at=now_ms()))
                if request.in_transaction is not None:
                    request.in_transaction(conn, version)
        except IntegrityError:
            if request.version is not None:
                existing = _find(workspace, request.name, request.version)
                if existing is None:
                    raise
                return _same_or_conflict(existing, request.type, stored_path, manifest.digest), False
            continue
        return get_asset(workspace, request.name, version), True
    raise Conflict(f"could not take a new version of {request.name}: too many concurrent writers")


def _row(
    request: Request,
    stored_path: str,
    manifest: Manifest,
    manifest_uri: str,
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "name": request.name,
        "type": request.type,
        "path": stored_path,
        "description": request.description,
        "tags": json.dumps(request.tags or {}),
        "manifest_uri": manifest_uri,
        "digest": manifest.digest,
        "size": manifest.size,
        "file_count": manifest.file_count,
        "profile": None if profile is None else json.dumps(profile),
        "lifecycle_stage": "active",
        "job_id": request.job_id,
    }


def _next_version(conn: Connection, name: str) -> str:
    versions = conn.execute(select(data_assets.c.version).where(data_assets.c.name == name)).scalars()
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


# -- reading -------------------------------------------------------------------------------


def resolve_asset(workspace: Workspace, reference: str) -> DataAsset:
    """The version ``reference`` names: ``[azureml:]name:version``, ``[azureml:]name@latest``
    or a bare name (its latest version). Archived versions resolve by explicit version only."""
    name, version = parse_reference(reference)
    return get_asset(workspace, name, version)


def parse_reference(reference: str) -> tuple[str, str | None]:
    """``(name, version or None for latest)`` from any of the reference forms."""
    text = reference.strip()
    if text.startswith("azureml://"):
        raise InvalidInput(f"{reference} is a location, not a data asset reference")
    text = text.removeprefix("azureml:")
    if "@" in text:
        name, _, label = text.partition("@")
        if label != "latest":
            raise InvalidInput(
                f"unknown label @{label} in {reference}", hint="the label Keel knows is @latest"
            )
        return name, None
    name, _, version = text.partition(":")
    if not name or (":" in version):
        raise InvalidInput(f"{reference!r} is not a data asset reference", hint="use azureml:NAME:VERSION")
    return name, version or None


def get_asset(workspace: Workspace, name: str, version: str | None = None) -> DataAsset:
    """One version, or the latest active one when ``version`` is None."""
    found = _find(workspace, name, version)
    if found is None:
        what = f"{name}:{version}" if version else f"{name} (no active version)"
        raise NotFound(f"no data asset {what}", hint="see `keel data list`")
    return found


def list_assets(
    workspace: Workspace, name: str | None = None, *, include_archived: bool = False
) -> list[DataAsset]:
    """Every version of ``name``, newest first; without a name, each asset's latest version."""
    query = _select()
    if name is not None:
        query = query.where(data_assets.c.name == name)
    if not include_archived:
        query = query.where(data_assets.c.lifecycle_stage == "active")
    query = query.order_by(data_assets.c.name, data_assets.c.created_at.desc(), data_assets.c.id.desc())
    with workspace.store.read() as conn:
        found = [_asset(row) for row in conn.execute(query)]
    if name is not None:
        return found
    latest: dict[str, DataAsset] = {}
    for asset in found:
        latest.setdefault(asset.name, asset)
    return list(latest.values())


def set_archived(workspace: Workspace, name: str, version: str | None, *, archived: bool) -> int:
    """Archive (or restore) one version, or every version of ``name``; returns how many."""
    if version is not None:
        get_asset(workspace, name, version)
    condition = data_assets.c.name == name
    if version is not None:
        condition &= data_assets.c.version == version
    stage = "archived" if archived else "active"
    with workspace.store.write() as conn:
        changed = conn.execute(update(data_assets).where(condition).values(lifecycle_stage=stage)).rowcount
    if not changed:
        raise NotFound(f"no data asset {name}", hint="see `keel data list --include-archived`")
    return int(changed)


def _select() -> Any:
    return select(data_assets, jobs.c.name.label("job_name")).outerjoin(
        jobs, jobs.c.id == data_assets.c.job_id
    )


def _find(workspace: Workspace, name: str, version: str | None) -> DataAsset | None:
    query = _select().where(data_assets.c.name == name)
    if version is not None:
        query = query.where(data_assets.c.version == version)
    else:
        query = query.where(data_assets.c.lifecycle_stage == "active").order_by(
            data_assets.c.created_at.desc(), data_assets.c.id.desc()
        )
    with workspace.store.read() as conn:
        row = conn.execute(query.limit(1)).first()
    return None if row is None else _asset(row)


def _asset(row: Any) -> DataAsset:
    return DataAsset(
        name=row.name,
        version=row.version,
        type=row.type,
        path=row.path,
        digest=row.digest,
        manifest_uri=row.manifest_uri,
        profile=json.loads(row.profile) if row.profile else None,
        job_name=row.job_name,
        created_at=row.created_at,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        size=row.size,
        file_count=row.file_count,
        lifecycle_stage=row.lifecycle_stage,
    )


# -- getting the data ----------------------------------------------------------------------


def materialize(workspace: Workspace, asset: DataAsset, cache: Path) -> Path:
    """A local path holding the version's data, checked against its manifest.

    Snapshots in a local workspace store are used in place (content-addressed, they
    cannot change); other local data is used in place once its digest still matches
    (remembered hashes make that cheap); remote data is copied once per digest into
    ``cache``, each file checked as it streams.
    """
    location = asset.location(workspace)
    if location.is_local and not is_pattern(location.path):
        if location.datastore != WORKSPACE_DATASTORE or not (location.relative or "").startswith("cas/"):
            _check_unchanged(workspace, asset, location)
        return Path(location.path)
    manifest = asset.manifest(workspace)
    folder = fetch(workspace, manifest, cache)
    return folder / manifest.entries[0].path if asset.type == "uri_file" else folder


def fetch(workspace: Workspace, manifest: Manifest, cache: Path) -> Path:
    """The manifest's files in a folder under ``cache``: copied once per digest, each file checked."""
    folder = cache / "data" / manifest.digest.split(":", 1)[1]
    if not folder.exists():
        _fetch(workspace, manifest, folder)
    return folder


def _check_unchanged(workspace: Workspace, asset: DataAsset, location: Location) -> None:
    current = scan(location, digests=DigestCache(workspace.store), expect=_EXPECT[asset.type])
    if current.digest != asset.digest:
        raise Conflict(
            f"the data of {asset.name}:{asset.version} at {location.uri} changed since it was registered",
            hint="register the current data as a new version",
        )


def _fetch(workspace: Workspace, manifest: Manifest, folder: Path) -> None:
    """Copy a manifest's files into ``folder``, which appears only once complete and checked."""
    temp = folder.parent / f".fetch-{folder.name}-{uuid.uuid4().hex}"
    try:
        root = resolve_location(workspace, manifest.root)
        with storage_errors(root.datastore or root.uri):
            copy_checked(manifest, root, temp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            temp.rename(folder)
        except OSError:
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def download(workspace: Workspace, reference: str, destination: Path) -> Path:
    """Copy a version's files to ``destination/<name>``, checking each against the manifest."""
    asset = resolve_asset(workspace, reference)
    manifest = asset.manifest(workspace)
    target = destination / asset.name
    root = resolve_location(workspace, manifest.root)
    with storage_errors(root.datastore or root.uri):
        copy_checked(manifest, root, target)
    return target / manifest.entries[0].path if asset.type == "uri_file" else target
