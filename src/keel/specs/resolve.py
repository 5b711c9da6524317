"""Resolve a parsed spec into a :class:`ResolvedJob`, checking everything before anything runs.

Checked here, each with the file, line and field in the message: the shape of
every job, step and component (pydantic); component files that do not exist;
bindings to parent inputs, steps or outputs that are not there; required inputs
left unbound; literals of the wrong type or out of range; ``${{…}}`` in commands
that name nothing; cycles between steps.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ValidationError

from keel.errors import KeelError
from keel.specs.bindings import (
    bind_output,
    bind_value,
    infer_decl,
    literal_value,
    reference_or_error,
)
from keel.specs.checks import File, Where, check_acyclic, check_wiring, first_problem
from keel.specs.expressions import ExpressionError, references_in
from keel.specs.models import (
    ApprovalStep,
    CommandComponent,
    CommandJob,
    DataTransferJob,
    InputDecl,
    OutputDecl,
    PipelineComponent,
    PipelineJob,
    PipelineSettings,
    PipelineStep,
    Retry,
    SearchParam,
    SweepJob,
    TransformJob,
    Trial,
)
from keel.specs.resolved import (
    Binding,
    Component,
    Environment,
    OutputBinding,
    ResolvedJob,
    Step,
    SweepPlan,
)
from keel.specs.source import Source, read_yaml
from keel.tracking.validation import text_values

Model = TypeVar("Model", bound=BaseModel)
# (name, version or None for latest) -> the registered component (raises LookupError if none)
ComponentLookup = Callable[[str, str | None], Component]
_NO_LOCAL_MEANING = ("resources", "identity", "queue_settings", "services", "distribution")
_JOB_TYPES = ("command", "pipeline", "sweep", "data_transfer", "transform")


class Resolver:
    """Resolves one job file (and the component files it names), collecting notices."""

    def __init__(self, lookup_component: ComponentLookup | None = None) -> None:
        self._lookup = lookup_component
        self.notices: list[str] = []
        self._loading: list[str] = []

    def job(self, raw: Any, source: Source, base: Path | None) -> ResolvedJob:
        file = File(source, base)
        if not isinstance(raw, dict):
            raise file.error((), "expected a mapping (a job specification) at the top level")
        kind = raw.get("type", "command")
        job: CommandJob | PipelineJob | SweepJob | DataTransferJob | TransformJob
        settings = PipelineSettings()
        if kind == "pipeline":
            job = self.model(PipelineJob, raw, file, ())
            root, settings = self._pipeline_job(job, file), job.settings
        elif kind == "sweep":
            job = self.model(SweepJob, raw, file, ())
            root = self._sweep(job, file, (), name=job.name or "sweep", allow_parent=False)
        elif kind == "command":
            job = self.model(CommandJob, raw, file, ())
            root = self._command(job, file, (), name=job.name or "command", allow_parent=False)
        elif kind in ("data_transfer", "transform"):
            job, root = self._data_step(kind, raw, file, (), name=raw.get("name") or kind, allow_parent=False)
        elif kind == "approval":
            raise file.error(("type",), "an approval is a step of a pipeline, not a job of its own")
        else:
            hint = f"expected one of {', '.join(_JOB_TYPES)}"
            raise file.error(("type",), f"unknown job type {kind!r}", hint=hint)
        self._note_local_meaning(job, file)
        return ResolvedJob(
            kind=kind,
            root=root,
            name=job.name,
            display_name=job.display_name,
            experiment_name=job.experiment_name,
            description=job.description,
            tags=text_values(job.tags),
            settings=settings,
            notices=list(dict.fromkeys(self.notices)),
            source_file=source.file,
        )

    def model(self, model: type[Model], raw: Any, file: File, where: Where) -> Model:
        if not isinstance(raw, dict):
            raise file.error(where, f"expected a mapping, got {type(raw).__name__}")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise first_problem(exc, model, file, where) from None

    # -- notices ------------------------------------------------------------------------

    def _note_local_meaning(self, spec: Any, file: File) -> None:
        compute = getattr(spec, "compute", None)
        if compute and compute != "local":
            self.notices.append(f"compute {compute} runs on the local executor")
        for field in _NO_LOCAL_MEANING:
            if getattr(spec, field, None) is not None:
                name = Path(file.source.file).name
                self.notices.append(f"{field} has no local meaning here and is ignored ({name})")

    def _environment(self, value: str | dict[str, Any] | None) -> Environment:
        if value is None:
            return Environment()
        python = f"Python {sys.version.split()[0]} at {sys.prefix}"
        if isinstance(value, str):
            self.notices.append(f"environment {value} runs in this interpreter ({python})")
            return Environment(reference=value)
        described = value.get("image") or value.get("conda_file") or "an inline environment"
        self.notices.append(f"environment {described} runs in this interpreter ({python})")
        return Environment(inline=dict(value))

    # -- command jobs and steps ---------------------------------------------------------

    def _command(self, job: CommandJob, file: File, where: Where, *, name: str, allow_parent: bool) -> Step:
        if job.component is not None:
            if job.command is not None:
                raise file.error((*where, "command"), "give either a component or a command, not both")
            component = self._step_component(job, file, where)
        elif job.command is None:
            raise file.error(where, "a command job needs a 'command' (or a 'component')")
        else:
            component = self._inline_command(job, file, where, name)
        self._note_local_meaning(job, file)
        deterministic = component.is_deterministic if job.is_deterministic is None else job.is_deterministic
        return Step(
            name=name,
            kind="command",
            component=component,
            inputs=self.bind_inputs(component, job.inputs, file, where, allow_parent=allow_parent),
            outputs=self.bind_outputs(component, job.outputs, file, where, allow_parent=allow_parent),
            display_name=job.display_name,
            timeout=job.limits.timeout if job.limits else None,
            retry=job.retry or Retry(),
            compute=job.compute,
            is_deterministic=deterministic,
        )

    def _step_component(self, job: CommandJob, file: File, where: Where) -> Component:
        """The step's component, with the step's environment settings laid over it."""
        assert job.component is not None
        component = self.component(job.component, file, (*where, "component"))
        if component.kind != "command":
            raise file.error((*where, "component"), "a command step needs a command component")
        update: dict[str, Any] = {}
        if job.environment is not None:
            update["environment"] = self._environment(job.environment)
        if job.environment_variables:
            variables = {
                **component.environment_variables,
                **text_values(job.environment_variables),
            }
            update["environment_variables"] = variables
        return component.model_copy(update=update) if update else component

    def _inline_command(self, job: CommandJob, file: File, where: Where, name: str) -> Component:
        component = Component(
            kind="command",
            name=name,
            command=job.command,
            code=self._code(job.code, file, (*where, "code")),
            environment=self._environment(job.environment),
            environment_variables=text_values(job.environment_variables),
            inputs={key: infer_decl(value) for key, value in job.inputs.items()},
            outputs=_output_decls(job.outputs),
            is_deterministic=job.is_deterministic if job.is_deterministic is not None else True,
            source=file.source.file,
        )
        self._check_command(component, file, (*where, "command"))
        return component

    def _code(self, code: str | None, file: File, where: Where) -> str | None:
        if code is None:
            return None
        if "://" in code or code.startswith("azureml:"):
            raise file.error(where, f"code must be a local folder, got {code!r}")
        folder = (file.local_base(where, "code") / Path(code).expanduser()).resolve()
        if not folder.exists():
            raise file.error(where, f"the code folder {folder} does not exist")
        return str(folder)

    def _check_command(
        self,
        component: Component,
        file: File,
        where: Where,
        *,
        search_space: set[str] | None = None,
    ) -> None:
        try:
            references = references_in(component.command or "")
        except ExpressionError as exc:
            raise file.error(where, str(exc)) from None
        for reference in references:
            if reference.context == "inputs" and reference.name not in component.inputs:
                known = ", ".join(component.inputs) or "none"
                raise file.error(where, f"{reference.text} names no input (inputs: {known})")
            if reference.context == "outputs" and reference.name not in component.outputs:
                known = ", ".join(component.outputs) or "none"
                raise file.error(where, f"{reference.text} names no output (outputs: {known})")
            if reference.context == "search_space" and reference.name not in (search_space or ()):
                raise file.error(where, f"{reference.text} names no search-space parameter")
            if reference.context not in ("inputs", "outputs", "search_space", "name"):
                raise file.error(where, f"{reference.text} cannot be used in a command")

    # -- components ---------------------------------------------------------------------

    def component(self, ref: str | dict[str, Any], file: File, where: Where) -> Component:
        """A component named by a file path, an ``azureml:name:version`` reference, or inline."""
        if isinstance(ref, dict):
            return self._component_from(ref, file, where)
        if ref.startswith("azureml:") and not ref.startswith("azureml://"):
            return self._registered_component(ref, file, where)
        path = (file.local_base(where, "a component") / Path(ref).expanduser()).resolve()
        if not path.is_file():
            raise file.error(where, f"the component file {path} does not exist")
        if str(path) in self._loading:
            raise file.error(where, f"component {path.name} includes itself")
        self._loading.append(str(path))
        try:
            raw = read_yaml(path)
            return self._component_from(raw, File(Source(path, raw), path.parent), ())
        finally:
            self._loading.pop()

    def _registered_component(self, ref: str, file: File, where: Where) -> Component:
        text = ref.removeprefix("azureml:")
        name, _, version = text.partition(":") if ":" in text else text.partition("@")
        if self._lookup is None:
            raise file.error(where, f"cannot resolve {ref} without a workspace")
        try:
            return self._lookup(name, None if version in ("", "latest") else version)
        except (LookupError, KeelError) as exc:
            raise file.error(where, str(exc), hint="see `keel component list`") from None

    def _component_from(self, raw: Any, file: File, where: Where) -> Component:
        if isinstance(raw, dict) and raw.get("type") == "pipeline":
            return self._pipeline_component(self.model(PipelineComponent, raw, file, where), file, where)
        spec = self.model(CommandComponent, raw, file, where)
        for key, decl in spec.inputs.items():
            if decl.default is not None and decl.is_literal:
                literal_value(decl, decl.default, file.source, (*where, "inputs", key, "default"))
        component = Component(
            kind="command",
            name=spec.name or Path(file.source.file).stem,
            version=None if spec.version is None else str(spec.version),
            display_name=spec.display_name,
            description=spec.description,
            command=spec.command,
            code=self._code(spec.code, file, (*where, "code")),
            environment=self._environment(spec.environment),
            environment_variables=text_values(spec.environment_variables),
            inputs=spec.inputs,
            outputs=spec.outputs,
            is_deterministic=spec.is_deterministic,
            source=file.source.file,
        )
        self._note_local_meaning(spec, file)
        self._check_command(component, file, (*where, "command"))
        return component

    def _pipeline_component(self, spec: PipelineComponent, file: File, where: Where) -> Component:
        steps = self._steps(spec.jobs, file, (*where, "jobs"), spec.inputs, spec.outputs)
        return Component(
            kind="pipeline",
            name=spec.name or Path(file.source.file).stem,
            version=None if spec.version is None else str(spec.version),
            display_name=spec.display_name,
            description=spec.description,
            inputs=spec.inputs,
            outputs=spec.outputs,
            steps=steps,
            settings=spec.settings,
            source=file.source.file,
        )

    # -- inputs and outputs -------------------------------------------------------------

    def bind_inputs(
        self,
        component: Component,
        values: dict[str, Any],
        file: File,
        where: Where,
        *,
        allow_parent: bool,
    ) -> dict[str, Binding]:
        bound: dict[str, Binding] = {}
        for key, value in values.items():
            at = (*where, "inputs", key)
            decl = _declared(component, "input", key, file, at)
            bound[key] = bind_value(
                decl, value, source=file.source, where=at, base=file.base, allow_parent=allow_parent
            )
        for key, decl in component.inputs.items():
            if key in bound or decl.optional or decl.default is not None:
                continue
            if decl.path is not None:
                at = (*where, "inputs", key)
                bound[key] = bind_value(
                    decl,
                    decl.path,
                    source=file.source,
                    where=at,
                    base=file.base,
                    allow_parent=False,
                )
                continue
            raise file.error(where, f"required input {key!r} of {component.name} is not given")
        return bound

    def bind_outputs(
        self,
        component: Component,
        values: dict[str, Any],
        file: File,
        where: Where,
        *,
        allow_parent: bool,
    ) -> dict[str, OutputBinding]:
        bound: dict[str, OutputBinding] = {}
        for key, value in values.items():
            at = (*where, "outputs", key)
            decl = _declared(component, "output", key, file, at)
            bound[key] = bind_output(decl, value, source=file.source, where=at, allow_parent=allow_parent)
        for key, decl in component.outputs.items():
            bound.setdefault(key, OutputBinding(decl=decl))
        return bound

    # -- pipelines ----------------------------------------------------------------------

    def _pipeline_job(self, job: PipelineJob, file: File) -> Step:
        for key, value in job.outputs.items():
            if reference_or_error(value, file.source, ("outputs", key)) is not None:
                raise file.error(("outputs", key), "a pipeline job's outputs cannot be bound further")
        inputs = {key: infer_decl(value) for key, value in job.inputs.items()}
        outputs = _output_decls(job.outputs)
        component = Component(
            kind="pipeline",
            name=job.name or Path(file.source.file).stem,
            display_name=job.display_name,
            description=job.description,
            inputs=inputs,
            outputs=outputs,
            steps=self._steps(job.jobs, file, ("jobs",), inputs, outputs),
            settings=job.settings,
            source=file.source.file,
        )
        return Step(
            name=component.name,
            kind="pipeline",
            component=component,
            inputs=self.bind_inputs(component, job.inputs, file, (), allow_parent=False),
            outputs={key: OutputBinding(decl=decl) for key, decl in outputs.items()},
            display_name=job.display_name,
            compute=job.compute or job.settings.default_compute,
        )

    def _steps(
        self,
        jobs: dict[str, Any],
        file: File,
        where: Where,
        parent_inputs: dict[str, InputDecl],
        parent_outputs: dict[str, OutputDecl],
    ) -> dict[str, Step]:
        if not jobs:
            raise file.error(where, "a pipeline needs at least one step under 'jobs'")
        steps = {name: self._step(name, raw, file, (*where, name)) for name, raw in jobs.items()}
        check_wiring(steps, parent_inputs, parent_outputs, file, where)
        check_acyclic(steps, file, where)
        return steps

    def _step(self, name: str, raw: Any, file: File, where: Where) -> Step:
        if not isinstance(raw, dict):
            raise file.error(where, "expected a step specification (a mapping)")
        kind = raw.get("type", "command")
        if kind == "command":
            job = self.model(CommandJob, raw, file, where)
            return self._command(job, file, where, name=name, allow_parent=True)
        if kind == "sweep":
            sweep = self.model(SweepJob, raw, file, where)
            return self._sweep(sweep, file, where, name=name, allow_parent=True)
        if kind == "pipeline":
            return self._pipeline_step(self.model(PipelineStep, raw, file, where), file, where, name)
        if kind in ("data_transfer", "transform"):
            return self._data_step(kind, raw, file, where, name=name, allow_parent=True)[1]
        if kind == "approval":
            from keel.specs.resolve_approval import approval_step

            return approval_step(self, self.model(ApprovalStep, raw, file, where), file, where, name=name)
        hint = "expected one of command, sweep, pipeline, data_transfer, transform, approval"
        raise file.error((*where, "type"), f"unknown step type {kind!r}", hint=hint)

    def _data_step(
        self, kind: str, raw: Any, file: File, where: Where, *, name: str, allow_parent: bool
    ) -> tuple[DataTransferJob | TransformJob, Step]:
        from keel.specs.resolve_data import data_transfer_step, transform_step

        if kind == "data_transfer":
            copy = self.model(DataTransferJob, raw, file, where)
            return copy, data_transfer_step(self, copy, file, where, name=name, allow_parent=allow_parent)
        transform = self.model(TransformJob, raw, file, where)
        return transform, transform_step(self, transform, file, where, name=name, allow_parent=allow_parent)

    def _pipeline_step(self, spec: PipelineStep, file: File, where: Where, name: str) -> Step:
        component = self.component(spec.component, file, (*where, "component"))
        if component.kind != "pipeline":
            raise file.error((*where, "component"), "a pipeline step needs a pipeline component")
        return Step(
            name=name,
            kind="pipeline",
            component=component,
            inputs=self.bind_inputs(component, spec.inputs, file, where, allow_parent=True),
            outputs=self.bind_outputs(component, spec.outputs, file, where, allow_parent=True),
            display_name=spec.display_name,
            compute=spec.compute,
        )

    # -- sweeps -------------------------------------------------------------------------

    def _sweep(self, job: SweepJob, file: File, where: Where, *, name: str, allow_parent: bool) -> Step:
        if isinstance(job.trial, Trial):
            component = self._trial_component(job, file, where, name)
        else:
            component = self.component(job.trial, file, (*where, "trial"))
            if component.kind != "command":
                raise file.error((*where, "trial"), "a sweep's trial must be a command component")
            for param in job.search_space:
                if param not in component.inputs:
                    message = f"the trial component has no input {param!r} to sweep"
                    raise file.error((*where, "search_space", param), message)
        swept = {k: _optional(d) if k in job.search_space else d for k, d in component.inputs.items()}
        fixed = {k: v for k, v in job.inputs.items() if k not in job.search_space}
        inputs = self.bind_inputs(
            component.model_copy(update={"inputs": swept}),
            fixed,
            file,
            where,
            allow_parent=allow_parent,
        )
        self._note_local_meaning(job, file)
        return Step(
            name=name,
            kind="sweep",
            component=component,
            inputs=inputs,
            outputs=self.bind_outputs(component, job.outputs, file, where, allow_parent=allow_parent),
            display_name=job.display_name,
            timeout=job.limits.timeout,
            retry=job.retry or Retry(),
            compute=job.compute,
            is_deterministic=False,
            sweep=SweepPlan(
                sampling=job.sampling,
                search_space=job.search_space,
                objective=job.objective,
                limits=job.limits,
                early_termination=job.early_termination,
            ),
        )

    def _trial_component(self, job: SweepJob, file: File, where: Where, name: str) -> Component:
        """An inline trial: each ``${{search_space.x}}`` becomes an input named x."""
        trial = job.trial
        assert isinstance(trial, Trial)
        probe = Component(
            kind="command",
            name=name,
            command=trial.command,
            inputs={k: infer_decl(v) for k, v in job.inputs.items()},
            outputs=_output_decls(job.outputs),
        )
        space = set(job.search_space)
        self._check_command(probe, file, (*where, "trial", "command"), search_space=space)
        command = trial.command
        for param in job.search_space:
            command = re.sub(
                r"\$\{\{\s*search_space\." + re.escape(param) + r"\s*\}\}",
                "${{inputs." + param + "}}",
                command,
            )
        inputs = dict(probe.inputs)
        inputs.update({param: _search_decl(spec) for param, spec in job.search_space.items()})
        return Component(
            kind="command",
            name=f"{name}_trial",
            command=command,
            code=self._code(trial.code, file, (*where, "trial", "code")),
            environment=self._environment(trial.environment),
            environment_variables=text_values(trial.environment_variables),
            inputs=inputs,
            outputs=probe.outputs,
            source=file.source.file,
        )


@overload
def _declared(component: Component, side: Literal["input"], key: str, file: File, at: Where) -> InputDecl: ...
@overload
def _declared(
    component: Component, side: Literal["output"], key: str, file: File, at: Where
) -> OutputDecl: ...
def _declared(component: Component, side: str, key: str, file: File, at: Where) -> InputDecl | OutputDecl:
    """The declaration of ``key`` on one side of ``component``, or an error listing that side."""
    declared: dict[str, Any] = component.inputs if side == "input" else component.outputs
    if key not in declared:
        known = ", ".join(declared) or "none"
        raise file.error(at, f"{component.name} has no {side} {key!r} ({side}s: {known})")
    return declared[key]  # type: ignore[no-any-return]


def _output_decls(outputs: dict[str, Any]) -> dict[str, OutputDecl]:
    return {
        key: OutputDecl.model_validate(value) if isinstance(value, dict) else OutputDecl()
        for key, value in outputs.items()
    }


def _search_decl(spec: SearchParam) -> InputDecl:
    """The literal type a search-space parameter's values have."""
    if spec.type != "choice":
        return InputDecl(type="integer" if spec.type == "randint" else "number")
    values = spec.values or []
    if all(isinstance(v, bool) for v in values):
        return InputDecl(type="boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return InputDecl(type="integer")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return InputDecl(type="number")
    return InputDecl(type="string")


def _optional(decl: InputDecl) -> InputDecl:
    return decl.model_copy(update={"optional": True})
