"""``@keel.pipeline``: a function that calls components becomes a pipeline.

    @keel.pipeline(experiment_name="shop")
    def train_and_score(raw: Annotated[str, keel.Input(type="uri_file")], lr: float = 0.1):
        prepared = prep(raw=raw)  # a step, named "prep" after its component
        fit = train(data=prepared.outputs.clean, lr=lr).named("fit")
        return {"model": fit.outputs.model}  # the pipeline's outputs

    job = train_and_score(raw="data/orders.csv")  # a ResolvedJob of kind "pipeline"

The function runs once, the first time the pipeline is used, with placeholders for
its parameters. Calling a component records a step and returns its
:class:`StepHandle`; ``step.outputs.x`` (or ``step.inputs.x``) passed to another
component binds to that step, a parameter binds to the pipeline's input, and any
other value is bound as it is: a literal, or a path for a data input. Steps are
named after their component, made unique with ``_1``, ``_2``…, unless
``.named(...)`` chooses; ``.configure(...)`` sets a step's display name, compute,
timeout and retries. The returned mapping names the pipeline's outputs.

Calling the decorated function with arguments gives the job: the pipeline written
as the document ``keel job export`` writes, resolved by the resolver
``load_job`` uses, so the Python and YAML forms cannot drift apart. Called inside
another pipeline's function, it adds one step running it as a pipeline component.
Relative data paths are relative to the working directory, as in Azure's SDK.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, overload

from keel.jobs.python_component import (
    ComponentFunction,
    building,
    component_name,
    source_file,
    summary,
)
from keel.jobs.python_signature import (
    FunctionError,
    Input,
    check_literal,
    read_pipeline_inputs,
)
from keel.specs.export import (
    SCHEMAS,
    component_document,
    literal_document,
    output_declaration,
)

if TYPE_CHECKING:
    from keel.specs.resolved import Component, ResolvedJob

__all__ = ["PipelineFunction", "StepHandle", "pipeline"]

P = ParamSpec("P")
_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class PipelineFunction(Generic[P]):
    """A function declared with ``@keel.pipeline``.

    Called with arguments, it returns the pipeline job (:class:`ResolvedJob`); called
    inside another pipeline, a :class:`StepHandle`. ``.component`` is the pipeline as
    a component (kind "pipeline"), ``.inputs`` its declared inputs.
    """

    def __init__(
        self,
        func: Callable[P, Any],
        *,
        name: str | None = None,
        version: str | int = "1",
        display_name: str | None = None,
        description: str | None = None,
        experiment_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.label = f"pipeline {getattr(func, '__qualname__', func)}"
        self.inputs = read_pipeline_inputs(func, self.label)
        self.func = func
        self.name = component_name(name, func.__name__, self.label)
        self.version = str(version)
        self.display_name = display_name
        self.description = description if description is not None else summary(func)
        self.experiment_name = experiment_name
        self.tags = dict(tags or {})
        self.settings = {key: value for key, value in (settings or {}).items() if value is not None}
        self.source_file = source_file(func)
        self._graph: _Graph | None = None
        self._building_now = False
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        builder = building.get()
        if builder is not None:
            if args:
                raise FunctionError(f"{self.label}: inside a pipeline, pass inputs by name")
            return builder.add_step(self, dict(kwargs))
        return self._job(self._arguments(args, kwargs))

    def __repr__(self) -> str:
        return f"<keel pipeline {self.name}>"

    @functools.cached_property
    def component(self) -> Component:
        """The pipeline as a component, for nesting inside another pipeline."""
        from keel.specs.checks import File
        from keel.specs.resolve import Resolver
        from keel.specs.source import Source, SpecError

        graph = self._build()
        document = self._header("pipeline")
        document["version"] = self.version
        document["inputs"] = {key: _declaration(decl) for key, decl in self.inputs.items()}
        document["outputs"] = dict(graph.outputs)
        document["jobs"] = graph.jobs(None)
        file = File(Source(self.source_file, None), Path.cwd())
        try:
            return Resolver().component(document, file, ())
        except SpecError as exc:
            raise FunctionError(f"{self.label}: {exc.message}", hint=exc.hint) from None

    def _header(self, kind: str) -> dict[str, Any]:
        document: dict[str, Any] = {"type": kind, "name": self.name}
        if self.display_name is not None:
            document["display_name"] = self.display_name
        if self.description is not None:
            document["description"] = self.description
        if self.settings:
            document["settings"] = dict(self.settings)
        return document

    def _job(self, values: dict[str, Any]) -> ResolvedJob:
        """The job document (no ``name``: each submission gets its own), resolved."""
        from keel.specs.resolve import Resolver
        from keel.specs.source import Source, SpecError

        graph = self._build()
        document = {"$schema": SCHEMAS["pipeline"], **self._header("pipeline")}
        del document["name"]
        document.setdefault("display_name", self.name)
        if self.experiment_name is not None:
            document["experiment_name"] = self.experiment_name
        if self.tags:
            document["tags"] = dict(self.tags)
        document["inputs"] = values
        document["outputs"] = dict(graph.outputs)
        document["jobs"] = graph.jobs(set(values))
        try:
            job = Resolver().job(document, Source(self.source_file, document), Path.cwd())
        except SpecError as exc:
            raise FunctionError(f"{self.label}: {exc.message}", hint=exc.hint) from None
        # A job file's root takes the file's name; a Python pipeline's takes the pipeline's.
        root = job.root.model_copy(
            update={"name": self.name, "component": job.root.component.model_copy(update={"name": self.name})}
        )
        return job.model_copy(update={"root": root})

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The job's ``inputs:``: each given (or defaulted) parameter as YAML writes it."""
        try:
            given = inspect.signature(self.func).bind(*args, **kwargs).arguments
        except TypeError as exc:
            raise FunctionError(f"{self.label}: {exc}") from None
        values: dict[str, Any] = {}
        for name, decl in self.inputs.items():
            value = given.get(name)
            if value is None:
                value = decl.default if decl.is_literal else decl.path
            if value is None:
                if not decl.optional:
                    raise FunctionError(f"{self.label}: input {name!r} is required")
                continue  # an optional input left out: steps bound to it go unbound
            values[name] = _job_input(f"{self.label}: input {name!r}", decl, value)
        return values

    def _build(self) -> _Graph:
        """Run the function once with placeholders, recording the steps it calls."""
        if self._graph is not None:
            return self._graph
        if self._building_now:
            raise FunctionError(f"{self.label} calls itself")
        builder = _Builder(self.label)
        placeholders = {name: PipelineInput(builder, name) for name in self.inputs}
        token = building.set(builder)
        self._building_now = True
        try:
            function: Callable[..., Any] = self.func
            returned = function(**placeholders)
        finally:
            building.reset(token)
            self._building_now = False
        self._graph = builder.finish(returned)
        return self._graph


@overload
def pipeline(func: Callable[P, Any], /) -> PipelineFunction[P]: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    version: str | int = "1",
    display_name: str | None = None,
    description: str | None = None,
    experiment_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    continue_on_step_failure: bool | None = None,
    force_rerun: bool | None = None,
    max_concurrency: int | None = None,
    default_compute: str | None = None,
) -> Callable[[Callable[P, Any]], PipelineFunction[P]]: ...


def pipeline(
    func: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | int = "1",
    display_name: str | None = None,
    description: str | None = None,
    experiment_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    continue_on_step_failure: bool | None = None,
    force_rerun: bool | None = None,
    max_concurrency: int | None = None,
    default_compute: str | None = None,
) -> PipelineFunction[P] | Callable[[Callable[P, Any]], PipelineFunction[P]]:
    """Declare a function composing components a pipeline; bare or with options.

    ``name`` is the pipeline's (its root step's, and its component's when nested) and
    defaults to the function's name in lower case; the job itself gets a fresh name
    each time it is submitted, as in Azure, and ``display_name`` defaults to ``name``.
    The settings are those of a pipeline job's ``settings:``.
    """
    settings = {
        "continue_on_step_failure": continue_on_step_failure,
        "force_rerun": force_rerun,
        "max_concurrency": max_concurrency,
        "default_compute": default_compute,
    }

    def decorate(function: Callable[P, Any]) -> PipelineFunction[P]:
        return PipelineFunction(
            function,
            name=name,
            version=version,
            display_name=display_name,
            description=description,
            experiment_name=experiment_name,
            tags=tags,
            settings=settings,
        )

    return decorate if func is None else decorate(func)


# -- what a pipeline function sees while it is built ---------------------------------------


class PipelineInput:
    """A pipeline parameter while the pipeline is built: a reference, not a value."""

    def __init__(self, builder: _Builder, name: str) -> None:
        self.builder = builder
        self.name = name

    def reference(self) -> str:
        return f"${{{{parent.inputs.{self.name}}}}}"

    def __repr__(self) -> str:
        return f"<pipeline input {self.name}>"

    def __bool__(self) -> bool:
        raise FunctionError(
            f"pipeline input {self.name!r} has no value while the pipeline is built; "
            "pass it to a component instead of testing it"
        )

    def __format__(self, spec: str) -> str:
        raise FunctionError(
            f"pipeline input {self.name!r} has no value while the pipeline is built; "
            "pass it to a component instead of formatting it"
        )


class PortHandle:
    """``step.outputs.x`` or ``step.inputs.x``: passed to a component, it binds to it."""

    def __init__(self, step: StepHandle, side: Literal["inputs", "outputs"], name: str) -> None:
        self.step = step
        self.side = side
        self.name = name

    @property
    def builder(self) -> _Builder:
        return self.step.builder

    def reference(self) -> str:
        return f"${{{{parent.jobs.{self.step.record.name}.{self.side}.{self.name}}}}}"

    def __repr__(self) -> str:
        return f"<{self.step.record.component.name}.{self.side}.{self.name}>"


class _Ports:
    """``step.outputs`` / ``step.inputs``: one attribute per declared name."""

    def __init__(self, step: StepHandle, side: Literal["inputs", "outputs"]) -> None:
        self._step = step
        self._side = side

    def _names(self) -> list[str]:
        component = self._step.record.component
        return list(component.outputs if self._side == "outputs" else component.inputs)

    def __getattr__(self, name: str) -> PortHandle:
        if name.startswith("__") or name not in self._names():
            known = ", ".join(self._names()) or "none"
            component = self._step.record.component.name
            raise AttributeError(f"{component} has no {self._side[:-1]} {name!r} ({known})")
        return PortHandle(self._step, self._side, name)

    def __getitem__(self, name: str) -> PortHandle:
        return self.__getattr__(name)

    def __dir__(self) -> list[str]:
        return self._names()


@dataclass(eq=False)
class _StepRecord:
    kind: Literal["command", "pipeline"]
    component: Component
    inputs: dict[str, Any]
    explicit_name: str | None = None
    name: str = ""
    parent_outputs: dict[str, str] = field(default_factory=dict)  # step output -> pipeline's
    settings: dict[str, Any] = field(default_factory=dict)  # display_name, compute, limits, retry


class StepHandle:
    """A step of the pipeline being built: ``.outputs.<name>``, ``.inputs.<name>``,
    ``.named(name)`` to choose its name (by default its component's name), and
    ``.configure(...)`` for its display name, compute, timeout and retries."""

    def __init__(self, builder: _Builder, record: _StepRecord) -> None:
        self.builder = builder
        self.record = record
        self.outputs = _Ports(self, "outputs")
        self.inputs = _Ports(self, "inputs")

    def named(self, name: str) -> StepHandle:
        """Name this step (a YAML ``jobs:`` key); returns the step, for chaining."""
        if not _STEP_NAME.match(name):
            raise FunctionError(
                f"{self.builder.label}: {name!r} is not a valid step name "
                "(letters, digits, _ and -, not starting with a digit or -)"
            )
        if any(other.explicit_name == name for other in self.builder.steps if other is not self.record):
            raise FunctionError(f"{self.builder.label}: two steps are named {name!r}")
        self.record.explicit_name = name
        return self

    def configure(
        self,
        *,
        display_name: str | None = None,
        compute: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
    ) -> StepHandle:
        """Set what a YAML step sets beside its inputs: ``display_name``, ``compute``,
        ``limits.timeout`` (seconds) and ``retry`` (a command step's); returns the step."""
        settings = self.record.settings
        if display_name is not None:
            settings["display_name"] = display_name
        if compute is not None:
            settings["compute"] = compute
        if (timeout, retries, retry_delay) != (None, None, None) and self.record.kind != "command":
            raise FunctionError(f"{self.builder.label}: timeouts and retries are a command step's")
        if timeout is not None:
            settings["limits"] = {"timeout": timeout}
        if retries is not None or retry_delay is not None:
            retry = {"count": retries or 0, "delay": retry_delay or 0.0}
            settings["retry"] = {**settings.get("retry", {}), **retry}
        return self

    @property
    def name(self) -> str | None:
        """The step's name: as chosen, or (once the pipeline is built) as given."""
        return self.record.explicit_name or self.record.name or None

    def single_output(self, where: str) -> PortHandle:
        names = list(self.record.component.outputs)
        if len(names) != 1:
            raise FunctionError(
                f"{where}: step {self.record.component.name} has {len(names)} outputs "
                f"({', '.join(names) or 'none'}); pass one of them (step.outputs.<name>)"
            )
        return PortHandle(self, "outputs", names[0])

    def __repr__(self) -> str:
        return f"<step {self.name or self.record.component.name}>"


class _Builder:
    """The steps a pipeline function records while it runs."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.steps: list[_StepRecord] = []

    def add_step(self, callee: Any, arguments: dict[str, Any]) -> StepHandle:
        if isinstance(callee, PipelineFunction):
            kind: Literal["command", "pipeline"] = "pipeline"
        elif isinstance(callee, ComponentFunction):
            kind = "command"
        else:
            raise FunctionError(f"{self.label}: cannot add {callee!r} as a step")
        component = callee.component
        inputs: dict[str, Any] = {}
        for key, value in arguments.items():
            if value is not None:
                inputs[key] = self._value(component, key, value)
        record = _StepRecord(kind=kind, component=component, inputs=inputs)
        self.steps.append(record)
        return StepHandle(self, record)

    def _value(self, component: Component, key: str, value: Any) -> Any:
        where = f"{self.label}: {component.name}({key}=…)"
        decl = component.inputs.get(key)
        if decl is None:
            if key in component.outputs:
                raise FunctionError(
                    f"{where}: {key!r} is an output; take it from the step "
                    f"({component.name}(...).outputs.{key})"
                )
            known = ", ".join(component.inputs) or "none"
            raise FunctionError(f"{where}: {component.name} has no input {key!r} ({known})")
        if isinstance(value, StepHandle):
            value = value.single_output(where)
        if isinstance(value, PipelineInput | PortHandle):
            if value.builder is not self:
                raise FunctionError(f"{where}: {value!r} belongs to another pipeline")
            if isinstance(value, PortHandle) and value.side == "outputs":
                produced = value.step.record.component.outputs[value.name]
                if produced.is_literal != decl.is_literal:
                    raise FunctionError(
                        f"{where}: {value!r} is a {produced.type} output; the input is {decl.type}"
                    )
            return value
        if isinstance(value, Input) or not decl.is_literal:
            return _data_value(where, decl.type, decl.mode, value)
        if isinstance(value, str | int | float | bool):
            return value  # checked against the declaration by the resolver
        raise FunctionError(f"{where}: expected a {decl.type}, got {type(value).__name__}")

    def finish(self, returned: object) -> _Graph:
        self._name_steps()
        outputs: dict[str, dict[str, Any]] = {}
        if returned is not None and not isinstance(returned, Mapping):
            raise FunctionError(
                f"{self.label} must return None or a dict of step outputs, got {type(returned).__name__}"
            )
        for key, value in (returned or {}).items():
            where = f"{self.label}: returned output {key!r}"
            handle = value.single_output(where) if isinstance(value, StepHandle) else value
            if not (isinstance(handle, PortHandle) and handle.side == "outputs"):
                raise FunctionError(f"{where}: return a step's output (step.outputs.<name>)")
            if handle.builder is not self or not _STEP_NAME.match(str(key)):
                raise FunctionError(f"{where}: not a valid output of this pipeline")
            record = handle.step.record
            if handle.name in record.parent_outputs:
                raise FunctionError(f"{where}: {handle!r} is returned twice")
            record.parent_outputs[handle.name] = str(key)
            outputs[str(key)] = output_declaration(record.component.outputs[handle.name])
        return _Graph(self.steps, outputs)

    def _name_steps(self) -> None:
        taken = {record.explicit_name for record in self.steps if record.explicit_name}
        for record in self.steps:
            name = record.explicit_name
            if name is None:
                base, count, name = record.component.name, 0, record.component.name
                while name in taken:
                    count += 1
                    name = f"{base}_{count}"
                taken.add(name)
            record.name = name


@dataclass(frozen=True)
class _Graph:
    steps: list[_StepRecord]
    outputs: dict[str, dict[str, Any]]

    def jobs(self, given: Container[str] | None) -> dict[str, Any]:
        """The ``jobs:`` mapping; bindings to pipeline inputs not in ``given`` left out."""
        return {record.name: _step_document(record, given) for record in self.steps}


def _step_document(record: _StepRecord, given: Container[str] | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": record.kind,
        "component": component_document(record.component),
    }
    inputs: dict[str, Any] = {}
    for key, value in record.inputs.items():
        if isinstance(value, PipelineInput):
            if given is not None and value.name not in given:
                continue
            inputs[key] = value.reference()
        elif isinstance(value, PortHandle):
            inputs[key] = value.reference()
        else:
            inputs[key] = value
    if inputs:
        document["inputs"] = inputs
    if record.parent_outputs:
        document["outputs"] = {
            key: f"${{{{parent.outputs.{name}}}}}" for key, name in record.parent_outputs.items()
        }
    document.update(record.settings)
    return document


def _job_input(where: str, decl: Input, value: object) -> Any:
    if isinstance(value, PipelineInput | PortHandle | StepHandle):
        raise FunctionError(f"{where}: a step's output is passed inside a pipeline, not to it")
    if decl.is_literal:
        return literal_document(decl.type or "string", check_literal(decl, value, where))
    return _data_value(where, decl.type or "uri_folder", decl.mode, value)


def _data_value(where: str, kind: str, mode: str | None, value: object) -> dict[str, Any]:
    """A data input's value as written: ``{type, path}`` (and ``mode``)."""
    if isinstance(value, Input):
        if value.path is None:
            raise FunctionError(f"{where}: Input(...) given as a value needs a path")
        kind, path, mode = value.type or kind, value.path, value.mode or mode
    elif isinstance(value, str | os.PathLike):
        path = os.fspath(value)
    else:
        raise FunctionError(f"{where}: expected a path or a step's output, got {value!r}")
    document: dict[str, Any] = {"type": kind, "path": path}
    if mode is not None:
        document["mode"] = mode
    return document


def _declaration(decl: Input) -> dict[str, Any]:
    """A nested pipeline's input declaration; a local default path made absolute."""
    written = decl.declaration()
    path = written.get("path")
    if path is not None and "://" not in path and not path.startswith("azureml:"):
        written["path"] = str(Path(path).expanduser().resolve())
    return written
