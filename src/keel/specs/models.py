"""Typed forms of Azure ML CLI v2 YAML: command, pipeline and sweep jobs, components.

These models check shape only: field names, types, required keys. Meaning —
whether a binding points somewhere, whether the graph has a cycle, whether a
required input was given — is checked by :mod:`keel.specs.resolve`. Fields Azure
ML accepts but that mean nothing on one machine (``resources``, ``identity``,
``queue_settings``…) are accepted here and reported as notices by the resolver.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LITERAL_TYPES = ("string", "integer", "number", "boolean")
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
InputType = Literal[
    "string",
    "integer",
    "number",
    "boolean",
    "uri_file",
    "uri_folder",
    "mltable",
    "mlflow_model",
    "custom_model",
    "triton_model",
]
OutputType = Literal[
    "uri_folder",
    "uri_file",
    "mltable",
    "mlflow_model",
    "custom_model",
    "triton_model",
    # Literal ("control") outputs: a value, not files. A Python component returns it;
    # a command writes it to the file ${{outputs.<name>}} names.
    "string",
    "integer",
    "number",
    "boolean",
]
InputMode = Literal["ro_mount", "download", "direct", "rw_mount", "eval_mount", "eval_download"]
OutputMode = Literal["rw_mount", "upload", "direct"]
Scalar = str | int | float | bool


class SpecModel(BaseModel):
    """Strict: an unknown key is an error naming the key and the file line."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class InputDecl(SpecModel):
    """A component's declared input."""

    type: InputType
    default: Any = None
    optional: bool = False
    description: str | None = None
    min: float | None = None
    max: float | None = None
    enum: list[Scalar] | None = None
    mode: InputMode | None = None
    path: str | None = None

    @property
    def is_literal(self) -> bool:
        return self.type in LITERAL_TYPES


class OutputDecl(SpecModel):
    """A declared output; ``name``/``version`` register it as a data asset once written."""

    type: OutputType = "uri_folder"
    mode: OutputMode | None = None
    path: str | None = None
    description: str | None = None
    name: str | None = None
    version: str | int | None = None
    is_control: bool | None = None

    @property
    def is_literal(self) -> bool:
        return self.type in LITERAL_TYPES


class Limits(SpecModel):
    timeout: float | None = Field(default=None, gt=0)


class Retry(SpecModel):
    """Keel extension: rerun a failed step ``count`` more times, ``delay`` seconds apart."""

    count: int = Field(default=0, ge=0, le=100)
    delay: float = Field(default=0.0, ge=0)


class _JobFields(SpecModel):
    """What every job type shares."""

    schema_: str | None = Field(default=None, alias="$schema")
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    properties: dict[str, Any] | None = None
    compute: str | None = None
    identity: Any = None
    resources: Any = None
    queue_settings: Any = None
    services: Any = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class CommandJob(_JobFields):
    """``type: command`` — a job, or a pipeline step (then possibly with ``component``)."""

    type: Literal["command"] = "command"
    command: str | None = None
    code: str | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, Scalar | None] = Field(default_factory=dict)
    distribution: Any = None
    limits: Limits | None = None
    component: str | dict[str, Any] | None = None
    retry: Retry | None = None
    is_deterministic: bool | None = None


class CopyOptions(SpecModel):
    """Keel extension on a data_transfer step: what to copy and how (see ``keel data copy``)."""

    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    prefix: str | None = None
    modified_since: str | None = None
    modified_until: str | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=256)
    bandwidth_limit: str | None = None
    sync: bool = False
    max_delete: int | None = Field(default=None, ge=0)
    skip_missing: bool = False
    skip_forbidden: bool = False
    skip_changed: bool = False
    incremental: bool = False
    verify: Literal["size", "hash"] = "hash"


class DataTransferJob(_JobFields):
    """``type: data_transfer``: Azure ML's copy_data task, run by Keel's copy engine."""

    type: Literal["data_transfer"]
    task: Literal["copy_data", "import_data", "export_data"] = "copy_data"
    data_copy_mode: Literal["merge_with_overwrite", "fail_if_conflict"] | None = None
    component: str | dict[str, Any] | None = None
    copy_options: CopyOptions | None = Field(default=None, alias="copy")


class TransformJob(_JobFields):
    """Keel extension, ``type: transform``: a SQL query over the step's inputs, written as Parquet."""

    type: Literal["transform"]
    engine: Literal["duckdb", "spark"] = "duckdb"
    query: str
    is_deterministic: bool | None = None


class ApprovalStep(_JobFields):
    """Keel extension, ``type: approval``: the pipeline waits here until people approve.

    Its inputs are passed on unchanged as outputs of the same names, so the steps that
    must wait for the decision bind to them.
    """

    type: Literal["approval"]
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = Field(default=1, ge=1, le=100)
    instructions: str | None = None
    timeout: float | None = Field(default=None, gt=0, description="seconds, or 90s / 30m / 4h / 2d")
    on_timeout: Literal["reject", "approve"] = "reject"

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return duration_seconds(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _enough_approvers(self) -> ApprovalStep:
        if any(not person.strip() for person in self.approvers):
            raise ValueError("an approver's name is empty")
        named = len(set(self.approvers))
        if self.approvers and self.min_approvals > named:
            raise ValueError(f"min_approvals is {self.min_approvals} but only {named} approvers are named")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``4h``, ``2d`` in seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected seconds or a duration such as 30m, 4h or 2d, got {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class CommandComponent(SpecModel):
    """``type: command`` component: a reusable, versioned command with typed inputs."""

    schema_: str | None = Field(default=None, alias="$schema")
    type: Literal["command"] = "command"
    name: str | None = None
    version: str | int | None = None
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    is_deterministic: bool = True
    inputs: dict[str, InputDecl] = Field(default_factory=dict)
    outputs: dict[str, OutputDecl] = Field(default_factory=dict)
    code: str | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, Scalar | None] = Field(default_factory=dict)
    command: str
    resources: Any = None
    distribution: Any = None
    additional_includes: list[str] | None = None
    properties: dict[str, Any] | None = None


class PipelineSettings(SpecModel):
    default_compute: str | None = None
    default_datastore: str | None = None
    default_environment: str | None = None
    continue_on_step_failure: bool = False
    force_rerun: bool = False
    max_concurrency: int | None = Field(default=None, ge=1, description="Keel: parallel steps")


class PipelineJob(_JobFields):
    """``type: pipeline``: steps under ``jobs``, bound to each other and to the parent."""

    type: Literal["pipeline"]
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    jobs: dict[str, Any]
    component: str | None = None


class PipelineComponent(SpecModel):
    """``type: pipeline`` component: a sub-graph with declared inputs and outputs."""

    schema_: str | None = Field(default=None, alias="$schema")
    type: Literal["pipeline"]
    name: str | None = None
    version: str | int | None = None
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Scalar | None] | None = None
    inputs: dict[str, InputDecl] = Field(default_factory=dict)
    outputs: dict[str, OutputDecl] = Field(default_factory=dict)
    jobs: dict[str, Any]
    settings: PipelineSettings | None = None


class PipelineStep(_JobFields):
    """A pipeline step that runs a pipeline component (nesting)."""

    type: Literal["pipeline"]
    component: str | dict[str, Any]
    settings: PipelineSettings | None = None


# -- sweeps ---------------------------------------------------------------------------

SearchType = Literal[
    "choice",
    "randint",
    "uniform",
    "loguniform",
    "normal",
    "lognormal",
    "quniform",
    "qloguniform",
    "qnormal",
    "qlognormal",
]
_SEARCH_FIELDS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "loguniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "lognormal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "qlognormal": ("mu", "sigma", "q"),
}


class SearchParam(SpecModel):
    """One hyperparameter's distribution."""

    type: SearchType
    values: list[Any] | None = None
    upper: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    mu: float | None = None
    sigma: float | None = Field(default=None, gt=0)
    q: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fields_for_type(self) -> SearchParam:
        needed = _SEARCH_FIELDS[self.type]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"a {self.type} parameter needs {', '.join(needed)}; missing {', '.join(missing)}"
            )
        extra = [
            name
            for name in ("values", "upper", "min_value", "max_value", "mu", "sigma", "q")
            if name not in needed and getattr(self, name) is not None
        ]
        if extra:
            raise ValueError(f"a {self.type} parameter takes {', '.join(needed)}, not {', '.join(extra)}")
        if self.type == "choice" and not self.values:
            raise ValueError("a choice parameter needs at least one value")
        if self.type == "randint" and (self.upper or 0) < 1:
            raise ValueError("randint's upper bound (exclusive) must be at least 1")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError(f"min_value {self.min_value} is above max_value {self.max_value}")
        return self


class SamplingAlgorithm(SpecModel):
    type: Literal["random", "grid", "bayesian"]
    seed: int | None = None
    rule: Literal["random", "sobol"] | None = None


class Objective(SpecModel):
    goal: Literal["maximize", "minimize"]
    primary_metric: str


class SweepLimits(SpecModel):
    max_total_trials: int = Field(default=1000, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    trial_timeout: float | None = Field(default=None, gt=0)


class EarlyTermination(SpecModel):
    type: Literal["bandit", "median_stopping", "truncation_selection"]
    slack_factor: float | None = Field(default=None, gt=0)
    slack_amount: float | None = Field(default=None, ge=0)
    evaluation_interval: int = Field(default=1, ge=1)
    delay_evaluation: int = Field(default=0, ge=0)
    truncation_percentage: int | None = Field(default=None, ge=1, le=99)

    @model_validator(mode="after")
    def _policy_fields(self) -> EarlyTermination:
        if self.type == "bandit" and (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("a bandit policy needs exactly one of slack_factor or slack_amount")
        if self.type == "truncation_selection" and self.truncation_percentage is None:
            raise ValueError("a truncation_selection policy needs truncation_percentage")
        return self


class Trial(SpecModel):
    command: str
    code: str | None = None
    environment: str | dict[str, Any] | None = None
    environment_variables: dict[str, Scalar | None] = Field(default_factory=dict)
    resources: Any = None
    distribution: Any = None


class SweepJob(_JobFields):
    """``type: sweep``: trials of a command over a search space, toward an objective."""

    type: Literal["sweep"]
    sampling_algorithm: Literal["random", "grid", "bayesian"] | SamplingAlgorithm
    search_space: dict[str, SearchParam]
    objective: Objective
    limits: SweepLimits = Field(default_factory=SweepLimits)
    early_termination: EarlyTermination | None = None
    trial: Trial | str | dict[str, Any]
    retry: Retry | None = None

    @property
    def sampling(self) -> SamplingAlgorithm:
        algorithm = self.sampling_algorithm
        return algorithm if isinstance(algorithm, SamplingAlgorithm) else SamplingAlgorithm(type=algorithm)
