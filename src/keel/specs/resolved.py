"""The resolved form of a job: what the runner executes, and what is stored with the job.

Whatever the YAML looked like (a command job, a pipeline with component files, a
sweep whose trial is a component), it resolves to one shape: a :class:`Step`
whose :class:`Component` is either a command or a graph of further steps, with
every input bound to a literal, to data, or to another step's output. Paths are
absolute; code folders are replaced by their snapshot digest at submission.
This form round-trips through JSON, so a rerun runs exactly what ran before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from keel.specs.models import (
    EarlyTermination,
    InputDecl,
    Objective,
    OutputDecl,
    PipelineSettings,
    Retry,
    SamplingAlgorithm,
    Scalar,
    SearchParam,
    SpecModel,
    SweepLimits,
)


class DataRef(SpecModel):
    """Data given to an input: a local path, a datastore or job URI, an asset, a URL."""

    type: str
    path: str
    mode: str | None = None


class Binding(SpecModel):
    """Where an input's value comes from."""

    kind: Literal["literal", "data", "parent_input", "step_output", "step_input"]
    value: Scalar | None = None
    data: DataRef | None = None
    name: str | None = None
    step: str | None = None

    @property
    def upstream_step(self) -> str | None:
        return self.step if self.kind in ("step_output", "step_input") else None


class OutputBinding(SpecModel):
    decl: OutputDecl = Field(default_factory=OutputDecl)
    parent_output: str | None = None


class Environment(SpecModel):
    """The environment as written; locally it is this interpreter (recorded with the job)."""

    reference: str | None = None
    inline: dict[str, Any] | None = None


class Component(SpecModel):
    """A command, a graph of steps, a copy or a transform, with declared inputs and outputs."""

    kind: Literal["command", "pipeline", "data_transfer", "transform", "approval"]
    name: str
    version: str | None = None
    display_name: str | None = None
    description: str | None = None
    command: str | None = None
    code: str | None = None
    code_digest: str | None = None
    environment: Environment = Field(default_factory=Environment)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, InputDecl] = Field(default_factory=dict)
    outputs: dict[str, OutputDecl] = Field(default_factory=dict)
    is_deterministic: bool = True
    steps: dict[str, Step] | None = None
    settings: PipelineSettings | None = None
    # data_transfer: the task and the copy options; transform: the engine and the query.
    task: str | None = None
    options: dict[str, Any] | None = None
    engine: str | None = None
    query: str | None = None
    source: str = "<inline>"


class SweepPlan(SpecModel):
    sampling: SamplingAlgorithm
    search_space: dict[str, SearchParam]
    objective: Objective
    limits: SweepLimits
    early_termination: EarlyTermination | None = None


class ApprovalPlan(SpecModel):
    """Who must approve an approval step, how many of them, and until when."""

    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = 1
    instructions: str | None = None
    timeout: float | None = None
    on_timeout: Literal["reject", "approve"] = "reject"


class Step(SpecModel):
    """One node: a component with its inputs bound, and how to run it."""

    name: str
    kind: Literal["command", "sweep", "pipeline", "data_transfer", "transform", "approval"]
    component: Component
    inputs: dict[str, Binding] = Field(default_factory=dict)
    outputs: dict[str, OutputBinding] = Field(default_factory=dict)
    display_name: str | None = None
    timeout: float | None = None
    retry: Retry = Field(default_factory=Retry)
    compute: str | None = None
    is_deterministic: bool = True
    sweep: SweepPlan | None = None
    approval: ApprovalPlan | None = None

    def upstream(self) -> set[str]:
        """The sibling steps this step waits for."""
        return {b.step for b in self.inputs.values() if b.step is not None and b.kind != "parent_input"}


class ResolvedJob(SpecModel):
    """A whole submitted job: its root step plus the job-level fields."""

    kind: Literal["command", "pipeline", "sweep", "data_transfer", "transform"]
    root: Step
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    notices: list[str] = Field(default_factory=list)
    source_file: str = "<inline>"


Component.model_rebuild()
Step.model_rebuild()
ResolvedJob.model_rebuild()
