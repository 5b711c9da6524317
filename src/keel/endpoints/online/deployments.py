"""A deployment spec resolved into what workers run: a registered model, frozen code, settings.

The model always goes through the registry: a reference (``azureml:name:1``,
``models:/name@champion``) is resolved, a local path is registered (anonymously
when the spec gives no name), so every model a worker loads is hash-checked. The
scoring code is snapshotted by content, as a job's code is, so editing the folder
after ``create`` changes nothing until ``update``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keel.endpoints.online import records
from keel.endpoints.online.specs import DeploymentSpec, InlineModel, ProbeSettings
from keel.errors import InvalidInput
from keel.workspace import Workspace

_REFERENCE_PREFIXES = ("azureml:", "models:/")


def create_deployment(
    workspace: Workspace, spec: DeploymentSpec, *, base: Path, all_traffic: bool = False
) -> records.Deployment:
    """Record a new deployment; a running ``keel up`` starts its workers."""
    records.get_endpoint(workspace, spec.endpoint_name)  # a clear error before any upload
    settings = resolve_settings(workspace, spec, base=base)
    return records.insert_deployment(
        workspace,
        spec.endpoint_name,
        spec.name,
        settings,
        description=spec.description,
        tags=spec.tags,
        all_traffic=all_traffic,
    )


def update_deployment(workspace: Workspace, spec: DeploymentSpec, *, base: Path) -> records.Deployment:
    """New settings (model, code, instance_count…) for an existing deployment."""
    records.get_deployment(workspace, spec.endpoint_name, spec.name)
    settings = resolve_settings(workspace, spec, base=base)
    return records.replace_deployment(
        workspace, spec.endpoint_name, spec.name, settings, description=spec.description, tags=spec.tags
    )


def scale_deployment(
    workspace: Workspace, endpoint: str, name: str, instance_count: int
) -> records.Deployment:
    """``update --instance-count N``: the same deployment with more or fewer workers."""
    if not 1 <= instance_count <= 64:
        raise InvalidInput(f"instance_count is 1 to 64, not {instance_count}")
    current = records.get_deployment(workspace, endpoint, name)
    settings = {**current.settings, "instance_count": instance_count}
    return records.replace_deployment(workspace, endpoint, name, settings, description=None, tags=None)


def resolve_settings(workspace: Workspace, spec: DeploymentSpec, *, base: Path) -> dict[str, Any]:
    """The JSON form stored with the deployment; nothing is recorded if any part is wrong."""
    code = _code(workspace, spec, base)
    model = _model(workspace, spec.model, base)
    if model.type != "mlflow_model" and code is None:
        raise InvalidInput(
            f"deployment {spec.name!r}: model {model.name}:{model.version} is a {model.type}, which needs "
            "a scoring script",
            hint="add code_configuration: {code: ./src, scoring_script: score.py}",
        )
    request = spec.request_settings
    return {
        "model": {"name": model.name, "version": model.version, "type": model.type},
        "code": code,
        "environment": spec.environment if isinstance(spec.environment, str) else None,
        "environment_variables": {k: str(v) for k, v in (spec.environment_variables or {}).items()},
        "instance_count": spec.instance_count,
        "request": request.model_dump(),
        "liveness_probe": (spec.liveness_probe or ProbeSettings()).model_dump(),
        "readiness_probe": (spec.readiness_probe or ProbeSettings()).model_dump(),
        "data_collector": _collector(spec),
    }


def _model(workspace: Workspace, model: str | InlineModel | None, base: Path) -> Any:
    from keel.models.registry import register_local_model, resolve_model

    if isinstance(model, InlineModel):
        path = _local(model.path, base)
        return register_local_model(workspace, path, name=model.name, model_type=model.type)
    assert model is not None  # the spec requires it
    if model.startswith(_REFERENCE_PREFIXES) or not (base / model).exists():
        if not model.startswith(_REFERENCE_PREFIXES) and ":" not in model and "@" not in model:
            raise InvalidInput(
                f"model {model!r} is neither a local path nor a registry reference",
                hint="give a folder next to the YAML file, or azureml:<name>:<version>",
            )
        return resolve_model(workspace, model)
    return register_local_model(workspace, _local(model, base))


def _local(path: str, base: Path) -> Path:
    local = (base / Path(path).expanduser()).resolve()
    if not local.exists():
        raise InvalidInput(f"model path {path!r}: nothing at {local}")
    return local


def _code(workspace: Workspace, spec: DeploymentSpec, base: Path) -> dict[str, str] | None:
    configuration = spec.code_configuration
    if configuration is None:
        return None
    from keel.artifacts import safe_relative_path
    from keel.jobs.content import DigestCache
    from keel.jobs.snapshot import snapshot

    folder = (base / Path(configuration.code).expanduser()).resolve()
    if not folder.is_dir():
        raise InvalidInput(f"code_configuration.code: no folder at {folder}")
    script = safe_relative_path(configuration.scoring_script)
    if not (folder / script).is_file():
        raise InvalidInput(f"code_configuration.scoring_script: no file {script} in {folder}")
    if not script.endswith(".py"):
        raise InvalidInput(f"code_configuration.scoring_script: {script} is not a Python file")
    scratch = workspace.config.root / "runs" / ".staging"
    digest = snapshot(folder, workspace.artifacts, DigestCache(workspace.store), scratch)
    return {"digest": digest, "scoring_script": script}


def _collector(spec: DeploymentSpec) -> dict[str, Any] | None:
    collector = spec.data_collector
    if collector is None:
        return None
    collections: dict[str, Any] = {}
    for name, collection in collector.collections.items():
        if not collection.enabled:
            continue
        data = collection.data
        if data and data.path and not data.path.startswith("azureml://datastores/"):
            raise InvalidInput(
                f"data_collector.collections.{name}.data.path: {data.path!r} is not a datastore path",
                hint="use azureml://datastores/<datastore>/paths/<folder>",
            )
        default_path = (
            "azureml://datastores/workspaceblobstore/paths/modelDataCollector/"
            f"{spec.endpoint_name}/{spec.name}/{name}"
        )
        collections[name] = {
            "data_name": (data.name if data and data.name else f"{spec.endpoint_name}-{spec.name}-{name}"),
            "data_path": (data.path if data and data.path else default_path),
            "data_version": str(data.version if data and data.version is not None else 1),
            "sampling_rate": (
                collection.sampling_rate if collection.sampling_rate is not None else collector.sampling_rate
            ),
        }
    if not collections:
        return None
    return {"rolling_rate": collector.rolling_rate.lower(), "collections": collections}
