"""Azure ML's online endpoint and managed online deployment YAML, as typed specs.

Shape only: names, types, ranges. Keys that mean nothing on one machine
(``instance_type``, ``identity``, ``scale_settings``…) are accepted so that Azure
YAML runs unmodified; :func:`notices` lists them for the CLI to print. Keel's
extensions are the adaptive batching settings in ``request_settings``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from keel.errors import InvalidInput

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")
NAME_RULE = "3 to 32 letters, digits and '-', starting with a letter (Azure's rule)"
MAX_REQUEST_TIMEOUT_MS = 180_000


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _check_name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{what} name {value!r} is not valid: {NAME_RULE}")
    return value


def _percentages(value: dict[str, int] | None, what: str) -> dict[str, int]:
    for deployment, share in (value or {}).items():
        if not 0 <= share <= 100:
            raise ValueError(f"{what} for {deployment!r} is {share}; a share is 0 to 100")
    return dict(value or {})


class IdentitySpec(_Spec):
    type: str | None = None
    user_assigned_identities: list[Any] | None = None


class EndpointSpec(_Spec):
    """``$schema: …/managedOnlineEndpoint.schema.json``."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None
    auth_mode: Literal["key", "aml_token"] = "key"
    traffic: dict[str, int] | None = None
    mirror_traffic: dict[str, int] | None = None
    compute: str | None = None
    identity: IdentitySpec | None = None
    public_network_access: Literal["enabled", "disabled"] | None = None
    kind: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "endpoint")

    @field_validator("traffic", "mirror_traffic")
    @classmethod
    def _shares(cls, value: dict[str, int] | None) -> dict[str, int]:
        return _percentages(value, "traffic")


class CodeConfiguration(_Spec):
    code: str
    scoring_script: str


class InlineModel(_Spec):
    """A model written inline in the deployment (Azure's model schema, the keys Keel uses)."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str | None = None
    version: str | int | None = None
    path: str
    type: Literal["custom_model", "mlflow_model"] | None = None
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None
    properties: dict[str, Any] | None = None


class RequestSettings(_Spec):
    request_timeout_ms: int = Field(default=5000, ge=1, le=MAX_REQUEST_TIMEOUT_MS)
    max_concurrent_requests_per_instance: int = Field(default=1, ge=1, le=10_000)
    max_queue_wait_ms: int = Field(default=500, ge=0, le=MAX_REQUEST_TIMEOUT_MS)
    # Keel: no-code workers score the requests already waiting together, up to max_batch_size
    # rows (1 = each alone); max_batch_wait_ms > 0 also waits that long to fill a batch.
    max_batch_size: int = Field(default=64, ge=1, le=100_000)
    max_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)


class ProbeSettings(_Spec):
    initial_delay: int = Field(default=10, ge=0)
    period: int = Field(default=10, ge=1)
    timeout: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=30, ge=1)


class CollectedData(_Spec):
    name: str | None = None
    path: str | None = None
    version: str | int | None = None


class Collection(_Spec):
    enabled: bool = False
    data: CollectedData | None = None
    # Azure accepts a per-collection sampling rate in newer schemas.
    sampling_rate: float | None = Field(default=None, ge=0, le=1)

    @field_validator("enabled", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        """Azure's examples write ``enabled: 'True'``."""
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value


class RequestLogging(_Spec):
    capture_headers: list[str] | None = None


class DataCollectorSpec(_Spec):
    collections: dict[str, Collection]
    sampling_rate: float = Field(default=1.0, ge=0, le=1)
    rolling_rate: Literal["minute", "hour", "day", "Minute", "Hour", "Day"] = "hour"
    request_logging: RequestLogging | None = None

    @field_validator("collections")
    @classmethod
    def _known(cls, value: dict[str, Collection]) -> dict[str, Collection]:
        unknown = sorted(set(value) - set(COLLECTIONS))
        if unknown:
            raise ValueError(
                f"collection {unknown[0]!r} is not one Keel collects; collections: {', '.join(COLLECTIONS)}"
            )
        return value


COLLECTIONS = ("model_inputs", "model_outputs", "request", "response")


class ScaleSettings(_Spec):
    type: str = "default"


class DeploymentSpec(_Spec):
    """``$schema: …/managedOnlineDeployment.schema.json``."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    endpoint_name: str
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None
    model: str | InlineModel | None = None
    model_mount_path: str | None = None
    code_configuration: CodeConfiguration | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, str | int | float | bool] | None = None
    instance_type: str | None = None
    instance_count: int = Field(default=1, ge=1, le=64)
    app_insights_enabled: bool | None = None
    scale_settings: ScaleSettings | None = None
    request_settings: RequestSettings = RequestSettings()
    liveness_probe: ProbeSettings | None = None
    readiness_probe: ProbeSettings | None = None
    data_collector: DataCollectorSpec | None = None
    egress_public_network_access: Literal["enabled", "disabled"] | None = None
    type: Literal["managed", "kubernetes"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "deployment")

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _check_name(value, "endpoint")

    @model_validator(mode="after")
    def _model_or_code(self) -> DeploymentSpec:
        if self.model is None:
            raise ValueError("a deployment needs a model (a registry reference or a path)")
        return self


_ENDPOINT_NOTICES = {
    "compute": "compute: endpoints are served by `keel up` on this machine",
    "identity": "identity: no managed identities locally; ignored",
    "public_network_access": "public_network_access: the gateway listens where `keel up --host` says",
    "kind": "kind: ignored",
}
_DEPLOYMENT_NOTICES = {
    "instance_type": "instance_type: instances are local worker processes; ignored",
    "environment": "environment: workers run in Keel's interpreter; recorded, not built",
    "model_mount_path": "model_mount_path: the model folder is given as AZUREML_MODEL_DIR",
    "app_insights_enabled": "app_insights_enabled: metrics are at the gateway's /metrics",
    "scale_settings": "scale_settings: set instance_count; no autoscaling locally",
    "egress_public_network_access": "egress_public_network_access: ignored",
    "type": "type: every deployment is served by `keel up`",
}


def notices(spec: EndpointSpec | DeploymentSpec) -> list[str]:
    """One line per key that has no local meaning, for the CLI to print."""
    table = _ENDPOINT_NOTICES if isinstance(spec, EndpointSpec) else _DEPLOYMENT_NOTICES
    return [text for key, text in table.items() if getattr(spec, key) is not None]


def read_endpoint(path: Path, overrides: dict[str, Any] | None = None) -> EndpointSpec:
    """An endpoint spec from a YAML file; problems name the file, line and key."""
    return _read(path, EndpointSpec, "an online endpoint", overrides)  # type: ignore[return-value]


def read_deployment(path: Path, overrides: dict[str, Any] | None = None) -> DeploymentSpec:
    """A deployment spec from a YAML file; problems name the file, line and key."""
    return _read(path, DeploymentSpec, "an online deployment", overrides)  # type: ignore[return-value]


def _read(path: Path, model: type[_Spec], what: str, overrides: dict[str, Any] | None) -> _Spec:
    from keel.specs.checks import File, first_problem
    from keel.specs.source import Source, read_yaml

    raw = read_yaml(path)
    source = Source(path, raw)
    if not isinstance(raw, dict):
        raise source.error((), f"{what} file must be a mapping of keys")
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise first_problem(exc, model, File(source, path.parent), ()) from None


def parse_shares(text: str, what: str) -> dict[str, int]:
    """``"blue=90 green=10"`` (the CLI's ``--traffic``) as a mapping."""
    shares: dict[str, int] = {}
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise InvalidInput(
                f"{what}: {item!r} is not deployment=percent", hint='e.g. --traffic "blue=90 green=10"'
            )
        if name in shares:
            raise InvalidInput(f"{what}: {name!r} is given twice")
        shares[name] = int(value)
    return shares
