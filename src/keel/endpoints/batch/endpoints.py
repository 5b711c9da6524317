"""Batch endpoints and their deployments: create, read, update the default, delete.

    keel batch-endpoint create -f endpoint.yml
    keel batch-deployment create -f deployment.yml --set-default

A deployment is resolved once, when it is created: its model goes through the
registry (a reference is resolved to one version; a local path is registered,
anonymously when it has no name, so every model scored was hash-checked), its code
folder is snapshotted by content (editing the folder later changes nothing), and
its settings are checked. Invocations then read the row and run.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.endpoints.batch.specs import (
    DeploymentSpec,
    EndpointSpec,
    InlineModel,
    LoadedSpec,
    Settings,
    check_name,
    effective_settings,
)
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store.schema import batch_deployments, batch_endpoints
from keel.tracking.validation import text_values
from keel.workspace import Workspace

_REFERENCE_PREFIXES = ("azureml:", "models:/")


@dataclass(frozen=True)
class BatchEndpoint:
    name: str
    description: str | None
    tags: dict[str, str]
    auth_mode: str | None
    default_deployment: str | None
    created_at: int
    updated_at: int
    deployments: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "auth_mode": self.auth_mode,
            "defaults": {"deployment_name": self.default_deployment},
            "deployments": list(self.deployments),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class BatchDeployment:
    endpoint: str
    name: str
    description: str | None
    tags: dict[str, str]
    model_name: str
    model_version: str
    code_digest: str | None
    scoring_script: str | None
    settings: Settings
    environment: str | None
    compute: str | None
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0

    @property
    def model_reference(self) -> str:
        return f"azureml:{self.model_name}:{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings.to_json()
        settings["environment_variables"] = sorted(self.settings.environment_variables)
        return {
            "name": self.name,
            "endpoint_name": self.endpoint,
            "description": self.description,
            "tags": self.tags,
            "model": self.model_reference,
            "code_configuration": (
                {"code": self.code_digest, "scoring_script": self.scoring_script}
                if self.code_digest
                else None
            ),
            "environment": self.environment,
            "compute": self.compute,
            "settings": settings,
            "properties": self.properties,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


# -- endpoints -------------------------------------------------------------------------------


def create_endpoint(workspace: Workspace, loaded: LoadedSpec, *, name: str | None = None) -> BatchEndpoint:
    """Record a new endpoint (a Conflict if the name is taken)."""
    spec: EndpointSpec = loaded.spec
    endpoint_name = check_name(name or spec.name, "batch endpoint")
    default = spec.defaults.deployment_name if spec.defaults else None
    if default is not None:  # it need not exist yet: the deployment of that name becomes the default
        check_name(default, "batch deployment")
    now = now_ms()
    row = {
        "name": endpoint_name,
        "description": spec.description,
        "tags": json.dumps(text_values(spec.tags)),
        "auth_mode": spec.auth_mode,
        "default_deployment": default,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with workspace.store.write() as conn:
            conn.execute(insert(batch_endpoints).values(**row))
    except IntegrityError:
        raise Conflict(
            f"a batch endpoint named {endpoint_name!r} already exists",
            hint="update it with keel batch-endpoint update, or delete it first",
        ) from None
    return get_endpoint(workspace, endpoint_name)


def get_endpoint(workspace: Workspace, name: str) -> BatchEndpoint:
    with workspace.store.read() as conn:
        row = conn.execute(select(batch_endpoints).where(batch_endpoints.c.name == name)).first()
        if row is None:
            raise NotFound(f"no batch endpoint named {name!r}", hint="see `keel batch-endpoint list`")
        names = conn.execute(
            select(batch_deployments.c.name)
            .where(batch_deployments.c.endpoint_id == row.id)
            .order_by(batch_deployments.c.name)
        ).scalars()
        return _endpoint(row, tuple(names))


def list_endpoints(workspace: Workspace) -> list[BatchEndpoint]:
    with workspace.store.read() as conn:
        rows = conn.execute(select(batch_endpoints).order_by(batch_endpoints.c.name)).all()
        pairs = conn.execute(
            select(batch_deployments.c.endpoint_id, batch_deployments.c.name).order_by(
                batch_deployments.c.name
            )
        ).all()
    by_endpoint: dict[int, list[str]] = {}
    for endpoint_id, deployment in pairs:
        by_endpoint.setdefault(endpoint_id, []).append(deployment)
    return [_endpoint(row, tuple(by_endpoint.get(row.id, []))) for row in rows]


def update_endpoint(
    workspace: Workspace,
    name: str,
    *,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    default_deployment: str | None = None,
) -> BatchEndpoint:
    """Change the description, add tags, or make another deployment the default."""
    endpoint = get_endpoint(workspace, name)
    values: dict[str, Any] = {"updated_at": now_ms()}
    if description is not None:
        values["description"] = description
    if tags:
        values["tags"] = json.dumps({**endpoint.tags, **text_values(tags)})
    if default_deployment is not None:
        if default_deployment not in endpoint.deployments:
            known = ", ".join(endpoint.deployments) or "none yet"
            raise NotFound(
                f"batch endpoint {name!r} has no deployment {default_deployment!r} (deployments: {known})"
            )
        values["default_deployment"] = default_deployment
    with workspace.store.write() as conn:
        conn.execute(update(batch_endpoints).where(batch_endpoints.c.name == name).values(**values))
    return get_endpoint(workspace, name)


def delete_endpoint(workspace: Workspace, name: str) -> None:
    """Delete an endpoint and its deployments; the jobs it ran and their outputs stay."""
    with workspace.store.write() as conn:
        found = conn.execute(select(batch_endpoints.c.id).where(batch_endpoints.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"no batch endpoint named {name!r}", hint="see `keel batch-endpoint list`")
        conn.execute(delete(batch_deployments).where(batch_deployments.c.endpoint_id == found))
        conn.execute(delete(batch_endpoints).where(batch_endpoints.c.id == found))


def _endpoint(row: Any, deployments: tuple[str, ...]) -> BatchEndpoint:
    return BatchEndpoint(
        name=row.name,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        auth_mode=row.auth_mode,
        default_deployment=row.default_deployment,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deployments=deployments,
    )


# -- deployments -----------------------------------------------------------------------------


def create_deployment(
    workspace: Workspace,
    loaded: LoadedSpec,
    *,
    name: str | None = None,
    endpoint_name: str | None = None,
    set_default: bool = False,
    replace: bool = False,
) -> BatchDeployment:
    """Resolve and record a deployment (``replace``: an existing one's new definition)."""
    spec: DeploymentSpec = loaded.spec
    deployment_name = _required(loaded, name or spec.name, "name", "batch deployment")
    endpoint = get_endpoint(
        workspace, _required(loaded, endpoint_name or spec.endpoint_name, "endpoint_name")
    )
    exists = deployment_name in endpoint.deployments
    if exists and not replace:
        raise Conflict(
            f"batch endpoint {endpoint.name!r} already has a deployment {deployment_name!r}",
            hint="change it with keel batch-deployment update -f, or delete it first",
        )
    if replace and not exists:
        raise NotFound(f"batch endpoint {endpoint.name!r} has no deployment {deployment_name!r} to update")
    row = {"name": deployment_name, **_resolved(workspace, loaded)}
    _write_deployment(workspace, endpoint, row, replace=exists)
    first = not endpoint.deployments
    if set_default or (first and endpoint.default_deployment is None):
        update_endpoint(workspace, endpoint.name, default_deployment=deployment_name)
    return get_deployment(workspace, endpoint.name, deployment_name)


def _resolved(workspace: Workspace, loaded: LoadedSpec) -> dict[str, Any]:
    """The deployment's row: code snapshotted and checked first, then the model through the
    registry (a custom model without a script is refused before anything is registered)."""
    spec: DeploymentSpec = loaded.spec
    code_digest, script = _code(workspace, loaded)
    if code_digest is None:
        _needs_no_script(workspace, loaded)
    model = _model(workspace, loaded)
    if model.type != "mlflow_model" and code_digest is None:
        raise loaded.error(
            ("model",),
            f"model {model.name}:{model.version} is a {model.type}, which needs a scoring script",
            hint="add code_configuration: {code: ./src, scoring_script: score.py}",
        )
    return {
        "description": spec.description,
        "tags": json.dumps(text_values(spec.tags)),
        "model_name": model.name,
        "model_version": model.version,
        "code_digest": code_digest,
        "scoring_script": script,
        "settings": json.dumps(effective_settings(spec).to_json()),
        "environment": _environment_label(spec.environment),
        "compute": spec.compute,
        "properties": json.dumps(spec.properties or {}),
        "updated_at": now_ms(),
    }


def _needs_no_script(workspace: Workspace, loaded: LoadedSpec) -> None:
    """Without a script the model must be an MLflow model: a local one is checked before registering."""
    model = loaded.spec.model
    path, declared = (model.path, model.type) if isinstance(model, InlineModel) else (model, None)
    if declared == "mlflow_model" or path.startswith(_REFERENCE_PREFIXES):
        return
    local = loaded.base / Path(path).expanduser()
    if local.exists() and (declared == "custom_model" or not (local / "MLmodel").is_file()):
        raise loaded.error(
            ("model",),
            f"{path} is not an MLflow model (no MLmodel file), so it needs a scoring script",
            hint="add code_configuration: {code: ./src, scoring_script: score.py}",
        )


def _required(loaded: LoadedSpec, value: str | None, field_name: str, what: str = "batch endpoint") -> str:
    if not value:
        raise loaded.error(
            (), f"{field_name!r} is required (in the file, or with --{field_name.replace('_', '-')})"
        )
    return check_name(value, what)


def _write_deployment(
    workspace: Workspace, endpoint: BatchEndpoint, row: dict[str, Any], *, replace: bool
) -> None:
    with workspace.store.write() as conn:
        endpoint_id = conn.execute(
            select(batch_endpoints.c.id).where(batch_endpoints.c.name == endpoint.name)
        ).scalar_one()
        if replace:
            conn.execute(
                update(batch_deployments)
                .where(
                    batch_deployments.c.endpoint_id == endpoint_id, batch_deployments.c.name == row["name"]
                )
                .values(**row)
            )
            return
        try:
            conn.execute(
                insert(batch_deployments).values(**row, endpoint_id=endpoint_id, created_at=row["updated_at"])
            )
        except IntegrityError:
            raise Conflict(
                f"batch endpoint {endpoint.name!r} already has a deployment {row['name']!r}"
            ) from None


def _model(workspace: Workspace, loaded: LoadedSpec) -> Any:
    """The registered version the spec names; a local path (or inline model) is registered first."""
    from keel.models.registry import register_local_model, resolve_model

    model: str | InlineModel = loaded.spec.model
    if isinstance(model, InlineModel):
        path = _local_model(workspace, loaded, model.path, ("model", "path"))
        return register_local_model(workspace, path, name=model.name, model_type=model.type)
    if model.startswith(_REFERENCE_PREFIXES) or not (loaded.base / model).exists():
        if not model.startswith(_REFERENCE_PREFIXES) and ":" not in model and "@" not in model:
            raise loaded.error(
                ("model",),
                f"model {model!r} is neither a local path nor a registered model reference",
                hint="use azureml:NAME:VERSION, azureml:NAME@ALIAS, or a path to the model's files",
            )
        return resolve_model(workspace, model)
    return register_local_model(workspace, _local_model(workspace, loaded, model, ("model",)))


def _local_model(workspace: Workspace, loaded: LoadedSpec, path: str, where: tuple[str, ...]) -> Path:
    from keel.data.locations import resolve_location

    location = resolve_location(workspace, path, base=loaded.base)
    if not location.is_local or location.datastore is not None:
        raise loaded.error(where, f"{path}: give a local model path, or register the model first")
    local = Path(location.path)
    if not local.exists():
        raise loaded.error(where, f"no model file or folder at {local}")
    return local


def _code(workspace: Workspace, loaded: LoadedSpec) -> tuple[str | None, str | None]:
    """The code folder's snapshot digest and the scoring script's path in it, both checked."""
    from keel.artifacts import safe_relative_path
    from keel.jobs.content import DigestCache
    from keel.jobs.snapshot import included_files, snapshot

    configuration = loaded.spec.code_configuration
    if configuration is None:
        return None, None
    folder = (loaded.base / Path(configuration.code).expanduser()).resolve()
    if not folder.is_dir():
        raise loaded.error(("code_configuration", "code"), f"the code folder {folder} does not exist")
    try:
        script = safe_relative_path(configuration.scoring_script)
    except InvalidInput as exc:
        raise loaded.error(("code_configuration", "scoring_script"), exc.message) from None
    if script not in {relative for relative, _ in included_files(folder)}:
        raise loaded.error(
            ("code_configuration", "scoring_script"), f"there is no {script} in the code folder {folder}"
        )
    check_scoring_script(folder / script, loaded, ("code_configuration", "scoring_script"))
    scratch = workspace.config.root / "runs" / ".staging"
    digest = snapshot(folder, workspace.artifacts, DigestCache(workspace.store), scratch)
    return digest, script


def check_scoring_script(path: Path, loaded: LoadedSpec | None = None, where: Sequence[str] = ()) -> None:
    """The script must define ``init()`` and ``run()`` at its top level; read, never run, here."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        message = f"the scoring script {path.name} is not valid Python: {exc.msg} (line {exc.lineno})"
        raise (loaded.error(where, message) if loaded else InvalidInput(message)) from None
    defined = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    missing = [name for name in ("init", "run") if name not in defined]
    if missing:
        message = (
            f"the scoring script {path.name} defines no {' and no '.join(f'{m}()' for m in missing)}; "
            "a batch scoring script needs init() and run(mini_batch)"
        )
        raise loaded.error(where, message) if loaded else InvalidInput(message)


def _environment_label(environment: str | dict[str, Any] | None) -> str | None:
    if environment is None or isinstance(environment, str):
        return environment
    return str(environment.get("image") or environment.get("conda_file") or "inline")


def get_deployment(workspace: Workspace, endpoint: str, name: str) -> BatchDeployment:
    with workspace.store.read() as conn:
        row = conn.execute(
            _deployments().where(batch_endpoints.c.name == endpoint, batch_deployments.c.name == name)
        ).first()
    if row is None:
        get_endpoint(workspace, endpoint)  # an unknown endpoint is named first
        raise NotFound(
            f"batch endpoint {endpoint!r} has no deployment {name!r}",
            hint=f"see `keel batch-deployment list --endpoint-name {endpoint}`",
        )
    return _deployment(row)


def list_deployments(workspace: Workspace, endpoint: str) -> list[BatchDeployment]:
    get_endpoint(workspace, endpoint)
    with workspace.store.read() as conn:
        rows = conn.execute(
            _deployments().where(batch_endpoints.c.name == endpoint).order_by(batch_deployments.c.name)
        ).all()
    return [_deployment(row) for row in rows]


def delete_deployment(workspace: Workspace, endpoint: str, name: str) -> None:
    """Delete a deployment; the endpoint's default cannot be deleted while other deployments exist."""
    found = get_endpoint(workspace, endpoint)
    if name not in found.deployments:
        get_deployment(workspace, endpoint, name)
    if found.default_deployment == name and len(found.deployments) > 1:
        raise Conflict(
            f"{name!r} is the default deployment of {endpoint!r}",
            hint=f"make another one the default first: keel batch-endpoint update --name {endpoint} "
            "--set defaults.deployment_name=OTHER",
        )
    with workspace.store.write() as conn:
        endpoint_id = conn.execute(
            select(batch_endpoints.c.id).where(batch_endpoints.c.name == endpoint)
        ).scalar_one()
        conn.execute(
            delete(batch_deployments).where(
                batch_deployments.c.endpoint_id == endpoint_id, batch_deployments.c.name == name
            )
        )
        if found.default_deployment == name:
            conn.execute(
                update(batch_endpoints)
                .where(batch_endpoints.c.id == endpoint_id)
                .values(default_deployment=None)
            )


def deployment_for(workspace: Workspace, endpoint: str, name: str | None) -> BatchDeployment:
    """The deployment an invocation uses: the one named, else the default, else the only one."""
    if name is not None:
        return get_deployment(workspace, endpoint, name)
    found = get_endpoint(workspace, endpoint)
    if found.default_deployment is not None:
        return get_deployment(workspace, endpoint, found.default_deployment)
    if len(found.deployments) == 1:
        return get_deployment(workspace, endpoint, found.deployments[0])
    if not found.deployments:
        raise NotFound(
            f"batch endpoint {endpoint!r} has no deployments",
            hint="create one with keel batch-deployment create -f deployment.yml",
        )
    raise InvalidInput(
        f"batch endpoint {endpoint!r} has {len(found.deployments)} deployments and no default",
        hint="pass --deployment-name, or set a default with keel batch-endpoint update",
    )


def _deployments() -> Any:
    return select(batch_deployments, batch_endpoints.c.name.label("endpoint_name")).join(
        batch_endpoints, batch_endpoints.c.id == batch_deployments.c.endpoint_id
    )


def _deployment(row: Any) -> BatchDeployment:
    return BatchDeployment(
        endpoint=row.endpoint_name,
        name=row.name,
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        model_name=row.model_name,
        model_version=row.model_version,
        code_digest=row.code_digest,
        scoring_script=row.scoring_script,
        settings=Settings.from_json(json.loads(row.settings)),
        environment=row.environment,
        compute=row.compute,
        properties=json.loads(row.properties) if row.properties else {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
