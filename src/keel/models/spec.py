"""Azure ML's model YAML (``$schema: …/model.schema.json``) for ``keel model create -f``.

    $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
    name: flights-forest
    version: 3
    path: ./model            # a local folder or file, a datastore URI or azureml://jobs/<job>/outputs/<out>
    type: mlflow_model       # or custom_model; detected from an MLmodel file when left out
    description: …
    tags: {team: delays}
    properties: {auc: "0.91"}

A local ``path`` is relative to the YAML file's folder. Problems name the file, the
line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel.errors import InvalidInput, NotFound
from keel.models.registry import ModelVersion, Request, register
from keel.tracking.validation import text_values
from keel.workspace import Workspace

_Scalar = str | int | float | bool | None


class ModelSpec(BaseModel):
    """The keys of a model YAML file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    version: str | int | None = None
    description: str | None = None
    tags: dict[str, _Scalar] | None = None
    properties: dict[str, _Scalar] | None = None
    path: str
    type: Literal["custom_model", "mlflow_model", "triton_model"] | None = None
    flavors: dict[str, Any] | None = None  # Azure's; Keel reads the flavors from the MLmodel file
    stage: str | None = None
    job_name: str | None = None


def create_from_file(
    workspace: Workspace, file: Path, *, overrides: Mapping[str, str | None] | None = None
) -> tuple[ModelVersion, bool]:
    """Register the model a YAML file describes; ``overrides`` (the command line's) win."""
    from pydantic import ValidationError

    from keel.specs.checks import File, first_problem
    from keel.specs.source import Source, read_yaml

    raw = read_yaml(file)
    source = Source(file, raw)
    if not isinstance(raw, dict):
        raise source.error((), "a model file must be a mapping (name, version, path, type…)")
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = str(Path(value).resolve()) if key == "path" and _is_local(value) else value
    try:
        spec = ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise first_problem(exc, ModelSpec, File(source, file.parent), ()) from None
    if spec.type == "triton_model":
        raise source.error(
            ("type",), "triton_model is not supported", hint="use custom_model or mlflow_model"
        )
    properties = text_values(spec.properties)
    if spec.stage is not None:
        properties["stage"] = spec.stage
    request = Request(
        name=spec.name,
        path=spec.path,
        type=spec.type,
        version=None if spec.version is None else str(spec.version),
        description=spec.description,
        tags=text_values(spec.tags),
        properties=properties,
        job_name=spec.job_name,
        reuse_latest=True,
    )
    try:
        return register(workspace, request, base=file.resolve().parent)
    except (InvalidInput, NotFound) as exc:
        field = _field_of(exc.message)
        if field is None:
            raise
        raise source.error((field,), exc.message, hint=exc.hint) from None


def _is_local(value: str) -> bool:
    return "://" not in value and not value.startswith(("azureml:", "runs:", "models:", "mlflow-artifacts:"))


def _field_of(message: str) -> str | None:
    """The YAML field a registration problem is about, to point at its line."""
    for field, marker in (("name", "model name"), ("version", "model version"), ("type", "model type")):
        if marker in message:
            return field
    if "MLmodel" in message or "mlflow_model" in message:
        return "type"
    if (
        message.startswith(("no model file or folder", "no job named", "nothing at"))
        or "has no output" in message
    ):
        return "path"
    return None
