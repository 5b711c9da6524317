"""Azure ML's batch endpoint and batch deployment YAML, typed and checked with file:line errors.

    $schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json
    name: flights-batch
    defaults: {deployment_name: forest}

    $schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
    name: forest
    endpoint_name: flights-batch
    type: model
    model: azureml:flights-forest@champion        # or a local path, or an inline model
    code_configuration: {code: ./src, scoring_script: score.py}   # optional for MLflow models
    compute: azureml:cpu-cluster                   # local worker processes here
    resources: {instance_count: 2}
    settings:
      max_concurrency_per_instance: 2
      mini_batch_size: 10
      output_action: append_row
      output_file_name: predictions.csv
      retry_settings: {max_retries: 3, timeout: 300}
      error_threshold: -1
      logging_level: info
      environment_variables: {MODE: batch}

The deployment settings may sit under ``settings:`` (``type: model``, Azure CLI 1.7
and later) or at the top level (the legacy form); :func:`effective_settings` turns
either into one :class:`Settings`. ``--set`` overrides at invoke time go through the
same checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import InvalidInput
from keel.specs.checks import File, first_problem
from keel.specs.load import apply_override
from keel.specs.source import LocatedDict, Source, read_yaml
from keel.tracking.validation import text_values

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{2,31}$")
NAME_HINT = "3 to 32 letters, digits and '-', starting with a letter (as Azure ML requires)"
OUTPUT_ACTIONS = ("append_row", "summary_only")
LOGGING_LEVELS = ("warning", "info", "debug")
Scalar = str | int | float | bool


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Defaults(_Spec):
    deployment_name: str | None = None


class EndpointSpec(_Spec):
    """``batchEndpoint.schema.json``."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    auth_mode: str | None = None
    defaults: Defaults | None = None


class RetrySettings(_Spec):
    max_retries: int = Field(default=3, ge=0, le=100)
    timeout: float = Field(default=30, gt=0)


class CodeConfiguration(_Spec):
    code: str
    scoring_script: str


class Resources(_Spec):
    instance_count: int = Field(default=1, ge=1, le=256)
    instance_type: str | None = None
    properties: dict[str, Any] | None = None


class InlineModel(_Spec):
    """A model defined in the deployment (Azure's model YAML): registered when the deployment is."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str | None = None
    version: str | int | None = None
    path: str
    type: Literal["custom_model", "mlflow_model"] | None = None
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    properties: dict[str, Any] | None = None
    stage: str | None = None


class DeploymentSettings(_Spec):
    """What ``settings:`` holds for a model deployment (and the legacy form's top-level keys)."""

    mini_batch_size: int | None = Field(default=None, ge=1)
    max_concurrency_per_instance: int | None = Field(default=None, ge=1, le=256)
    error_threshold: int | None = Field(default=None, ge=-1)
    retry_settings: RetrySettings | None = None
    output_action: Literal["append_row", "summary_only"] | None = None
    output_file_name: str | None = None
    logging_level: str | None = None
    environment_variables: dict[str, Scalar | None] | None = None

    @field_validator("output_file_name")
    @classmethod
    def _plain_file_name(cls, value: str | None) -> str | None:
        return None if value is None else check_file_name(value)

    @field_validator("logging_level")
    @classmethod
    def _known_level(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in LOGGING_LEVELS:
            raise ValueError(f"logging_level must be one of {', '.join(LOGGING_LEVELS)}, got {value!r}")
        return None if value is None else value.lower()


SETTING_KEYS = tuple(DeploymentSettings.model_fields)


class DeploymentSpec(DeploymentSettings):
    """``batchDeployment.schema.json`` for ``type: model`` (with or without ``settings:``)."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str | None = None
    endpoint_name: str | None = None
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    properties: dict[str, Any] | None = None
    type: Literal["model", "pipeline"] | None = None
    model: str | InlineModel | None = None
    code_configuration: CodeConfiguration | None = None
    environment: str | dict[str, Any] | None = None
    compute: str | None = None
    resources: Resources | None = None
    instance_count: int | None = Field(default=None, ge=1, le=256)
    settings: DeploymentSettings | None = None
    component: str | dict[str, Any] | None = None  # pipeline deployments: refused with a reason


@dataclass(frozen=True)
class Settings:
    """A deployment's effective settings: what one invocation runs with."""

    mini_batch_size: int | None = None  # None: 10 files, or 100,000 rows for tabular input
    max_concurrency_per_instance: int = 1
    instance_count: int = 1
    error_threshold: int = -1
    max_retries: int = 3
    timeout: float = 30.0
    output_action: str = "append_row"
    output_file_name: str = "predictions.csv"
    logging_level: str = "info"
    environment_variables: dict[str, str] = field(default_factory=dict)

    @property
    def workers(self) -> int:
        """Local worker processes: instances times the concurrency of each."""
        return self.instance_count * self.max_concurrency_per_instance

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def check_file_name(value: str) -> str:
    """An output file name is one plain name: no folders, nothing hidden, nothing to escape with."""
    if not value or "/" in value or "\\" in value or value in (".", "..") or value.startswith("."):
        raise ValueError(f"output_file_name must be a plain file name such as predictions.csv, got {value!r}")
    return value


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidInput(f"{what} name {value!r} is not valid", hint=NAME_HINT)
    return value


# -- reading files -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSpec:
    """A parsed spec and where it came from, for located errors and relative paths."""

    spec: Any
    file: File
    notices: list[str] = field(default_factory=list)

    @property
    def base(self) -> Path:
        """What relative paths in the file are relative to: the file's own folder."""
        return self.file.base or Path(self.file.source.file).parent

    def error(self, where: Sequence[str | int], message: str, *, hint: str | None = None) -> Exception:
        return self.file.error(tuple(where), message, hint=hint)


def load_endpoint(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Read and check a batch endpoint file; ``overrides`` are ``--set key=value`` pairs."""
    return _load(path, overrides, EndpointSpec, "a batch endpoint")


def load_deployment(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Read and check a batch deployment file, noting what has no local meaning."""
    loaded = _load(path, overrides, DeploymentSpec, "a batch deployment")
    spec: DeploymentSpec = loaded.spec
    if spec.type == "pipeline" or spec.component is not None:
        where = ("type",) if spec.type == "pipeline" else ("component",)
        raise loaded.error(
            where,
            "pipeline component deployments are not supported by Keel's batch endpoints",
            hint="deploy a model (type: model), or run the pipeline with keel job create",
        )
    if spec.model is None:
        raise loaded.error((), "'model' is required: a registered model reference or a local path")
    _check_single_placement(loaded)
    loaded.notices.extend(local_meaning_notices(spec))
    return loaded


def endpoint_changes(name: str, file: str | Path | None, overrides: Sequence[str]) -> EndpointSpec:
    """What ``keel batch-endpoint update`` changes: a file, or ``--set`` on the endpoint's fields."""
    if file is not None:
        spec: EndpointSpec = load_endpoint(file, overrides).spec
        if spec.name != name:
            raise InvalidInput(f"{file} describes batch endpoint {spec.name!r}, not {name!r}")
        return spec
    raw = LocatedDict(name=name)
    for override in overrides:
        apply_override(raw, override)
    try:
        return EndpointSpec.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidInput(f"--set {where}: {problem['msg']}") from None


def _load(path: str | Path, overrides: Sequence[str], model: type[BaseModel], what: str) -> LoadedSpec:
    file = Path(path).expanduser().resolve()
    raw = read_yaml(file)
    source = Source(file, raw)
    located = File(source, file.parent)
    if not isinstance(raw, dict):
        raise located.error((), f"expected a mapping ({what}) at the top level")
    for override in overrides:
        apply_override(raw, override)
    try:
        spec = model.model_validate(raw)
    except ValidationError as exc:
        raise first_problem(exc, model, located, ()) from None
    return LoadedSpec(spec, located)


def _check_single_placement(loaded: LoadedSpec) -> None:
    spec: DeploymentSpec = loaded.spec
    if spec.settings is None:
        return
    for key in SETTING_KEYS:
        if getattr(spec, key) is not None and getattr(spec.settings, key) is not None:
            raise loaded.error((key,), f"{key} is given both at the top level and under settings")


def local_meaning_notices(spec: DeploymentSpec) -> list[str]:
    """One line per setting that means something else on one machine (never an error)."""
    notices = []
    if spec.compute:
        notices.append(f"compute {spec.compute} runs as local worker processes")
    if isinstance(spec.environment, str):
        notices.append(f"environment {spec.environment} runs in this interpreter")
    elif spec.environment is not None:
        described = spec.environment.get("image") or spec.environment.get("conda_file") or "inline"
        notices.append(f"environment {described} runs in this interpreter")
    if spec.resources is not None and spec.resources.instance_type:
        notices.append(f"instance_type {spec.resources.instance_type} has no local meaning and is ignored")
    return notices


def effective_settings(spec: DeploymentSpec) -> Settings:
    """The settings a deployment spec gives, with Azure's defaults for what it leaves out."""
    given = spec.settings or DeploymentSettings()
    pick: dict[str, Any] = {}
    for key in SETTING_KEYS:
        value = getattr(given, key)
        pick[key] = value if value is not None else getattr(spec, key)
    retry = pick.pop("retry_settings") or RetrySettings()
    instance_count = spec.resources.instance_count if spec.resources else (spec.instance_count or 1)
    variables = pick.pop("environment_variables") or {}
    defaults = Settings()
    return Settings(
        **{key: (defaults.__dict__[key] if value is None else value) for key, value in pick.items()},
        instance_count=instance_count,
        max_retries=retry.max_retries,
        timeout=float(retry.timeout),
        environment_variables=text_values(variables),
    )


# -- invoke-time overrides -------------------------------------------------------------------

_OVERRIDE_ALIASES = {
    "resources.instance_count": "instance_count",
    "retry_settings.max_retries": "max_retries",
    "retry_settings.timeout": "timeout",
}


def override_settings(settings: Settings, overrides: Sequence[str]) -> Settings:
    """``--set mini_batch_size=100``, ``--set retry_settings.timeout=60``,
    ``--set environment_variables.MODE=test`` (``settings.`` in front is allowed): checked
    like the deployment file, so a bad value is refused before anything runs."""
    if not overrides:
        return settings
    raw = _as_spec_mapping(settings)
    for override in overrides:
        key, separator, value = override.partition("=")
        if not separator:
            raise InvalidInput(f"--set {override!r}: expected key=value")
        key = key.strip().removeprefix("settings.")
        key = _OVERRIDE_ALIASES.get(key, key)
        top = key.split(".", 1)[0]
        if top not in (*SETTING_KEYS, "instance_count", "max_retries", "timeout"):
            known = ", ".join((*SETTING_KEYS, "resources.instance_count"))
            raise InvalidInput(f"--set {key}: not a deployment setting", hint=f"settings: {known}")
        if top in ("max_retries", "timeout"):
            key = f"retry_settings.{key}"
        apply_override(raw, f"{key}={value}")
    try:
        spec = DeploymentSpec.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidInput(f"--set {where}: {problem['msg'].removeprefix('Value error, ')}") from None
    return effective_settings(spec)


def _as_spec_mapping(settings: Settings) -> LocatedDict:
    raw = LocatedDict(
        {
            "mini_batch_size": settings.mini_batch_size,
            "max_concurrency_per_instance": settings.max_concurrency_per_instance,
            "instance_count": settings.instance_count,
            "error_threshold": settings.error_threshold,
            "retry_settings": LocatedDict(max_retries=settings.max_retries, timeout=settings.timeout),
            "output_action": settings.output_action,
            "output_file_name": settings.output_file_name,
            "logging_level": settings.logging_level,
            "environment_variables": LocatedDict(settings.environment_variables),
        }
    )
    return raw
