"""The model registry: named, immutable model versions, content-addressed, with their lineage.

    keel model create --name forest --path ./model            (Azure ML: az ml model create)
    keel model create --from-job <job> --output-name model
    keel.log_model(model, name="model", registered_model_name="forest")
    mlflow.sklearn.log_model(..., registered_model_name="forest")   (through keel server)

A version's files are copied into the workspace's content store the way data assets
are (``cas/<hex>``, once per content) and a manifest records every file's hash; the
manifest's digest is on the version's row, so loading can prove the bytes it is
about to unpickle are the bytes that were registered. Versions are numbered per name
(the next integer unless one is given) and immutable: registering the same content
under an existing version is a no-op, different content a Conflict. ``@latest`` is
the newest version not archived; aliases (``@champion``) are set by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.models.references import LATEST, Reference, check_name, check_version, parse_model_reference
from keel.store.schema import jobs, model_aliases, model_versions, registered_models
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.data.manifest import Manifest
    from keel.models.mlflow_format import MLmodel

MODEL_TYPES = ("custom_model", "mlflow_model")
ANONYMOUS_PREFIX = "anonymous-"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as recorded."""

    name: str
    version: str
    type: str  # "custom_model" | "mlflow_model"
    path: str  # the stored URI in workspace storage (the content-store snapshot)
    digest: str  # content hash of the manifest
    description: str | None
    tags: dict[str, str]
    job_name: str | None  # the job that produced it
    archived: bool
    created_at: int  # ms
    flavors: list[str] = field(default_factory=list)
    signature: dict[str, Any] | None = None  # MLflow signature JSON: {"inputs": [...], "outputs": [...]}
    manifest_uri: str = ""  # relative to the artifact root
    size: int = 0
    file_count: int = 0
    properties: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # what was registered: a path, a job output, run files
    updated_at: int = 0

    @property
    def reference(self) -> str:
        """How deployments and jobs name this version: ``azureml:name:version``."""
        return f"azureml:{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "path": self.path,
            "digest": self.digest,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
            "flavors": self.flavors,
            "signature": self.signature,
            "job": self.job_name,
            "source": self.source,
            "size": self.size,
            "file_count": self.file_count,
            "manifest_uri": self.manifest_uri,
            "archived": self.archived,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Request:
    """What to register; the CLI's flags, a YAML file, a job output and the SDK all end up here."""

    name: str | None
    path: str
    type: str | None = None  # detected when None: an MLmodel file makes it an mlflow_model
    version: str | None = None
    description: str | None = None
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None
    job_name: str | None = None  # the producing job, when the source does not say
    reuse_latest: bool = False  # without a version: the latest version if it has the same content


# -- registering ---------------------------------------------------------------------------


def register(
    workspace: Workspace, request: Request, *, base: Path | None = None
) -> tuple[ModelVersion, bool]:
    """Register a version; returns it and whether it is new. Nothing is recorded on error."""
    from keel.data.assets import snapshot
    from keel.models.sources import locate

    if request.name is not None:
        check_name(request.name)
    if request.version is not None:
        check_version(request.version)
    if request.type is not None and request.type not in MODEL_TYPES:
        hint = "triton_model is not supported" if request.type == "triton_model" else None
        raise InvalidInput(
            f"unknown model type {request.type!r} (one of {', '.join(MODEL_TYPES)})", hint=hint
        )
    source = locate(workspace, request.path, base=base)
    stored, manifest, manifest_uri = snapshot(workspace, source.location)
    mlmodel = _mlmodel_of(workspace, manifest, source.text)
    kind = request.type or ("mlflow_model" if mlmodel is not None else "custom_model")
    if kind == "mlflow_model" and mlmodel is None:
        raise InvalidInput(
            f"{source.text} has no MLmodel file at its top, so it is not an mlflow_model",
            hint="register it as --type custom_model, or save it in the MLflow format",
        )
    name = request.name or ANONYMOUS_PREFIX + manifest.digest.split(":", 1)[1][:16]
    job_id = source.job_id if source.job_id is not None else _job_id(workspace, request.job_name)
    row = {
        "type": kind,
        "path": stored,
        "manifest_uri": manifest_uri,
        "digest": manifest.digest,
        "size": manifest.size,
        "file_count": manifest.file_count,
        "flavors": json.dumps(mlmodel.flavors) if mlmodel is not None else None,
        "signature": json.dumps(mlmodel.signature) if mlmodel and mlmodel.signature else None,
        "description": request.description,
        "tags": json.dumps(request.tags or {}),
        "properties": json.dumps(request.properties or {}),
        "source": source.text,
        "job_id": job_id,
        "lifecycle_stage": "active",
    }
    version = request.version or ("1" if request.name is None else None)
    if version is None and request.reuse_latest:
        latest = _find(workspace, name, None)
        if latest is not None and (latest.type, latest.digest) == (kind, manifest.digest):
            return latest, False
    return _insert(workspace, name, version, row)


def register_local_model(
    workspace: Workspace, path: Path, *, name: str | None = None, model_type: str | None = None
) -> ModelVersion:
    """Register a local model folder or file, so a deployment given a path still loads through
    the registry and its hash check. Without a name it is anonymous (as in Azure ML), named by
    its content, so the same files register once."""
    if not Path(path).exists():
        raise NotFound(f"no model file or folder at {path}")
    version, _ = register(workspace, Request(name=name, path=str(Path(path).resolve()), type=model_type))
    return version


def _mlmodel_of(workspace: Workspace, manifest: Manifest, shown: str) -> MLmodel | None:
    """The snapshot's MLmodel, read back from the content store and checked against its hash."""
    import hashlib

    from keel.data.locations import resolve_location
    from keel.models.mlflow_format import MLMODEL, parse_mlmodel

    entry = next((e for e in manifest.entries if e.path == MLMODEL), None)
    if entry is None:
        return None
    location = resolve_location(workspace, manifest.root).child(MLMODEL)
    with location.fs.open(location.path, "rb") as handle:
        data = handle.read()
    if "sha256:" + hashlib.sha256(data).hexdigest() != entry.hash:
        raise Conflict(f"{shown}: the MLmodel file changed while it was being registered; try again")
    return parse_mlmodel(data, f"{shown.rstrip('/')}/{MLMODEL}")


def _job_id(workspace: Workspace, job_name: str | None) -> int | None:
    if job_name is None:
        return None
    from keel.tracking.jobs import resolve_job_id

    return resolve_job_id(workspace.store, job_name)


def _insert(
    workspace: Workspace, name: str, version: str | None, row: dict[str, Any]
) -> tuple[ModelVersion, bool]:
    for _attempt in range(10):  # two writers may take the same next version; the schema decides
        existing = _find(workspace, name, version) if version is not None else None
        if existing is not None:
            return _same_or_conflict(existing, row), False
        try:
            with workspace.store.write() as conn:
                model_id = _model_id(conn, name, create=True)
                taken = version or _next_version(conn, model_id)
                now = now_ms()
                conn.execute(
                    insert(model_versions).values(
                        **row, model_id=model_id, version=taken, created_at=now, updated_at=now
                    )
                )
        except IntegrityError:
            continue
        return get_model_version(workspace, name, taken), True
    raise Conflict(f"could not record a version of model {name}: too many concurrent writers")


def _same_or_conflict(existing: ModelVersion, row: dict[str, Any]) -> ModelVersion:
    if (existing.type, existing.digest) == (row["type"], row["digest"]):
        return existing
    differs = "type" if existing.type != row["type"] else "content"
    raise Conflict(
        f"model {existing.name}:{existing.version} already exists with a different {differs}",
        hint="versions are immutable; give the new one another version, or omit it to take the next",
    )


def _model_id(conn: Connection, name: str, *, create: bool = False) -> int:
    found = conn.execute(select(registered_models.c.id).where(registered_models.c.name == name)).scalar()
    if found is not None:
        return int(found)
    if not create:
        raise NotFound(f"no model named {name!r}", hint="see `keel model list`")
    now = now_ms()
    values = {"name": name, "tags": "{}", "created_at": now, "updated_at": now}
    return int(
        conn.execute(
            insert(registered_models).values(**values).returning(registered_models.c.id)
        ).scalar_one()
    )


def _next_version(conn: Connection, model_id: int) -> str:
    versions = conn.execute(select(model_versions.c.version).where(model_versions.c.model_id == model_id))
    numbers = [int(v) for v in versions.scalars() if v.isdigit()]
    return str(max(numbers, default=0) + 1)


# -- reading -------------------------------------------------------------------------------


def resolve_model(workspace: Workspace, reference: str) -> ModelVersion:
    """The version a reference names (``azureml:NAME:VER``, ``models:/NAME@ALIAS`` …)."""
    return resolve_parsed(workspace, parse_model_reference(reference), reference)


def resolve_parsed(workspace: Workspace, parsed: Reference, shown: str | None = None) -> ModelVersion:
    if parsed.version is not None:
        return get_model_version(workspace, parsed.name, parsed.version)
    if parsed.label is None or parsed.label == LATEST:
        return get_model_version(workspace, parsed.name, None)
    query = (
        _select()
        .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
        .where(registered_models.c.name == parsed.name, model_aliases.c.alias == parsed.label)
    )
    with workspace.store.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        _model_exists(workspace, parsed.name)
        raise NotFound(
            f"model {parsed.name} has no alias @{parsed.label}" + (f" (in {shown})" if shown else ""),
            hint=f"set one with `keel model alias {parsed.name} {parsed.label}=VERSION`",
        )
    return _version(row)


def get_model_version(workspace: Workspace, name: str, version: str | None = None) -> ModelVersion:
    """One version, or the latest one not archived when ``version`` is None."""
    found = _find(workspace, name, version)
    if found is None:
        _model_exists(workspace, name)
        what = f"no version {version} of model {name}" if version else f"model {name} has no active version"
        raise NotFound(what, hint=f"see `keel model list --name {name}`")
    return found


def _model_exists(workspace: Workspace, name: str) -> None:
    with workspace.store.read() as conn:
        _model_id(conn, name)


def list_models(
    workspace: Workspace, name: str | None = None, *, include_archived: bool = False
) -> list[ModelVersion]:
    """Every version of ``name``, newest first; without a name, each model's latest version."""
    query = _select()
    if name is not None:
        query = query.where(registered_models.c.name == name)
    if not include_archived:
        query = query.where(model_versions.c.lifecycle_stage == "active")
    query = query.order_by(registered_models.c.name, model_versions.c.id.desc())
    with workspace.store.read() as conn:
        found = [_version(row) for row in conn.execute(query)]
    if name is not None:
        if not found:
            _model_exists(workspace, name)
        return found
    latest: dict[str, ModelVersion] = {}
    for version in found:
        latest.setdefault(version.name, version)
    return list(latest.values())


def _select() -> Any:
    return (
        select(model_versions, registered_models.c.name, jobs.c.name.label("job_name"))
        .join(registered_models, registered_models.c.id == model_versions.c.model_id)
        .outerjoin(jobs, jobs.c.id == model_versions.c.job_id)
    )


def _find(workspace: Workspace, name: str, version: str | None) -> ModelVersion | None:
    query = _select().where(registered_models.c.name == name)
    if version is not None:
        query = query.where(model_versions.c.version == version)
    else:
        query = query.where(model_versions.c.lifecycle_stage == "active").order_by(model_versions.c.id.desc())
    with workspace.store.read() as conn:
        row = conn.execute(query.limit(1)).first()
    return None if row is None else _version(row)


def _version(row: Row[Any]) -> ModelVersion:
    flavors = json.loads(row.flavors) if row.flavors else {}
    return ModelVersion(
        name=row.name,
        version=row.version,
        type=row.type,
        path=row.path,
        digest=row.digest,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        job_name=row.job_name,
        archived=row.lifecycle_stage == "archived",
        created_at=row.created_at,
        flavors=list(flavors),
        signature=json.loads(row.signature) if row.signature else None,
        manifest_uri=row.manifest_uri,
        size=row.size,
        file_count=row.file_count,
        properties=json.loads(row.properties) if row.properties else {},
        source=row.source,
        updated_at=row.updated_at,
    )


# -- changing what may change --------------------------------------------------------------


def update_model_version(
    workspace: Workspace,
    name: str,
    version: str,
    *,
    description: str | None = None,
    set_tags: dict[str, str] | None = None,
    remove_tags: list[str] | None = None,
) -> ModelVersion:
    """Change a version's description and tags (its files never change)."""
    with workspace.store.write() as conn:
        row = conn.execute(
            select(model_versions.c.id, model_versions.c.tags)
            .join(registered_models, registered_models.c.id == model_versions.c.model_id)
            .where(registered_models.c.name == name, model_versions.c.version == version)
        ).first()
        if row is None:
            raise NotFound(
                f"no version {version} of model {name}", hint=f"see `keel model list --name {name}`"
            )
        tags = json.loads(row.tags) if row.tags else {}
        tags.update({str(k): str(v) for k, v in (set_tags or {}).items()})
        for key in remove_tags or []:
            tags.pop(key, None)
        values: dict[str, Any] = {"tags": json.dumps(tags), "updated_at": now_ms()}
        if description is not None:
            values["description"] = description
        conn.execute(update(model_versions).where(model_versions.c.id == row.id).values(**values))
    return get_model_version(workspace, name, version)


def set_archived(workspace: Workspace, name: str, version: str | None, *, archived: bool) -> int:
    """Archive (or restore) one version, or every version of ``name``; returns how many."""
    stage = "archived" if archived else "active"
    with workspace.store.write() as conn:
        model_id = _model_id(conn, name)
        condition = model_versions.c.model_id == model_id
        if version is not None:
            condition &= model_versions.c.version == version
        changed = conn.execute(
            update(model_versions).where(condition).values(lifecycle_stage=stage, updated_at=now_ms())
        ).rowcount
    if not changed:
        raise NotFound(f"no version {version} of model {name}", hint=f"see `keel model list --name {name}`")
    return int(changed)
