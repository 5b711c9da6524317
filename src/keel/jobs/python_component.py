"""``@keel.component``: a typed Python function becomes a command component.

    @keel.component
    def prep(
        raw: Annotated[str, keel.Input(type="uri_file")],
        clean: Annotated[str, keel.Output()],
        drop_empty: bool = True,
    ) -> int:
        ...

The component's command is portable::

    python -m keel.function shop.prep:prep --raw ${{inputs.raw}} \
        $[[--drop_empty ${{inputs.drop_empty}}]] --clean ${{outputs.clean}} \
        --output ${{outputs.output}}

so the same spec runs as a subprocess wherever the module can be imported; its
``code`` is the folder holding the module's top-level package. The runner
recognises that command (:func:`keel.jobs.python_call.function_target`) and may
call the function in its own process instead (:func:`~keel.jobs.python_call.call_function`),
like Huey's "immediate" mode.

Called outside a pipeline, a component is the plain function, so it is tested like
one. Called while a ``@keel.pipeline`` function is being built, it adds a step to
that pipeline and returns the step's handle.
"""

from __future__ import annotations

import functools
import inspect
import re
import shlex
import sys
import sysconfig
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from keel.jobs.python_signature import FunctionError, FunctionSpec, Input, Output, read_component

if TYPE_CHECKING:
    from keel.specs.resolved import Component

__all__ = ["ComponentFunction", "FunctionError", "Input", "Output", "component"]

P = ParamSpec("P")
R = TypeVar("R")
COMMAND_PREFIX = "python -m keel.function"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,254}$")


class StepBuilder(Protocol):
    """What a pipeline being built offers the components and pipelines called inside it."""

    def add_step(self, callee: Any, arguments: dict[str, Any]) -> Any: ...


# The pipeline whose function is running right now, if any (see keel.jobs.python_pipeline).
building: ContextVar[StepBuilder | None] = ContextVar("keel_pipeline_building", default=None)
# module:qualname -> the decorated function, so that the runner calls the very object
# the user decorated (even one no import can reach, such as a function in a notebook).
_REGISTRY: dict[str, ComponentFunction[..., Any]] = {}


class ComponentFunction(Generic[P, R]):
    """A function declared with ``@keel.component``: callable as itself, and a component.

    ``.component`` is its resolved spec (:class:`keel.specs.resolved.Component`),
    ``.spec`` its inputs and outputs as read from the signature, ``.target`` the
    ``module:qualname`` its command runs, ``.func`` the undecorated function.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        version: str | int = "1",
        display_name: str | None = None,
        description: str | None = None,
        is_deterministic: bool = True,
        environment: str | dict[str, Any] | None = None,
    ) -> None:
        label = f"component {getattr(func, '__qualname__', func)}"
        self.spec: FunctionSpec = read_component(func, label)
        self.func = func
        self.name = component_name(name, func.__name__, label)
        self.version = str(version)
        self.display_name = display_name
        self.description = description if description is not None else summary(func)
        self.is_deterministic = is_deterministic
        self.environment = environment
        module, self.code = module_and_code(func)
        self.target = _register(f"{module}:{func.__qualname__}", self)
        self.source_file = source_file(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        builder = building.get()
        if builder is None:
            return self.func(*args, **kwargs)
        if args:
            raise FunctionError(f"{self.spec.label}: inside a pipeline, pass inputs by name")
        return builder.add_step(self, dict(kwargs))

    def __repr__(self) -> str:
        return f"<keel component {self.name} ({self.target})>"

    @property
    def command(self) -> str:
        inputs = ((name, decl.optional) for name, decl in self.spec.inputs.items())
        return command_line(self.target, inputs, self.spec.outputs)

    def document(self) -> dict[str, Any]:
        """The component as a spec file writes it (``type: command``, inline)."""
        document: dict[str, Any] = {"type": "command", "name": self.name, "version": self.version}
        if self.display_name is not None:
            document["display_name"] = self.display_name
        if self.description is not None:
            document["description"] = self.description
        document["command"] = self.command
        if self.code is not None:
            document["code"] = self.code
        if self.environment is not None:
            document["environment"] = self.environment
        document["inputs"] = {name: decl.declaration() for name, decl in self.spec.inputs.items()}
        document["outputs"] = {name: out.declaration() for name, out in self.spec.outputs.items()}
        document["is_deterministic"] = self.is_deterministic
        return document

    @functools.cached_property
    def component(self) -> Component:
        """The resolved spec, checked by the same resolver YAML goes through."""
        from keel.specs.checks import File
        from keel.specs.resolve import Resolver
        from keel.specs.source import Source, SpecError

        file = File(Source(self.source_file, None), Path.cwd())
        try:
            return Resolver().component(self.document(), file, ())
        except SpecError as exc:
            raise FunctionError(f"{self.spec.label}: {exc.message}", hint=exc.hint) from None


@overload
def component(func: Callable[P, R], /) -> ComponentFunction[P, R]: ...


@overload
def component(
    *,
    name: str | None = None,
    version: str | int = "1",
    display_name: str | None = None,
    description: str | None = None,
    is_deterministic: bool = True,
    environment: str | dict[str, Any] | None = None,
) -> Callable[[Callable[P, R]], ComponentFunction[P, R]]: ...


def component(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | int = "1",
    display_name: str | None = None,
    description: str | None = None,
    is_deterministic: bool = True,
    environment: str | dict[str, Any] | None = None,
) -> ComponentFunction[P, R] | Callable[[Callable[P, R]], ComponentFunction[P, R]]:
    """Declare a Python function a component; bare (``@component``) or with options.

    ``name`` defaults to the function's name in lower case, ``version`` to "1",
    ``description`` to the docstring's first paragraph. ``environment`` is written
    into the spec as given (locally the step runs in this interpreter).
    """

    def decorate(function: Callable[P, R]) -> ComponentFunction[P, R]:
        return ComponentFunction(
            function,
            name=name,
            version=version,
            display_name=display_name,
            description=description,
            is_deterministic=is_deterministic,
            environment=environment,
        )

    return decorate if func is None else decorate(func)


def registered(target: str) -> ComponentFunction[..., Any] | None:
    """The decorated function behind ``module:qualname``, if this process defined it."""
    return _REGISTRY.get(target)


def command_line(target: str, inputs: Iterable[tuple[str, bool]], outputs: Iterable[str]) -> str:
    """The command of the Python component ``target``; optional inputs inside ``$[[ ]]``."""
    parts = [COMMAND_PREFIX, shlex.quote(target)]
    for name, optional in inputs:
        option = f"--{name} ${{{{inputs.{name}}}}}"
        parts.append(f"$[[{option}]]" if optional else option)
    parts.extend(f"--{name} ${{{{outputs.{name}}}}}" for name in outputs)
    return " ".join(parts)


def component_name(explicit: str | None, function_name: str, label: str) -> str:
    """Azure's rule: a lower-case letter, then lower-case letters, digits, underscores."""
    name = explicit if explicit is not None else function_name.lower().lstrip("_")
    if not _NAME.match(name):
        hint = None if explicit is not None else "pass name=... to the decorator"
        raise FunctionError(
            f"{label}: {name!r} is not a valid name (a lower-case letter, then lower-case "
            "letters, digits or underscores; at most 255)",
            hint=hint,
        )
    return name


def module_and_code(func: Callable[..., Any]) -> tuple[str, str | None]:
    """The module to import ``func`` from, and the folder to import it in (None when the
    module is installed, or lives only in this process, as a notebook's functions do)."""
    name = func.__module__
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if name == "__main__":
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.name:
            name = spec.name  # run as `python -m package.module`
        elif file:
            name = Path(file).stem  # run as `python script.py`: import it as `script`
    if not file:
        return name, None
    folder = Path(file).resolve()
    if folder.name == "__init__.py":
        folder = folder.parent
    for _ in name.split("."):
        folder = folder.parent
    return name, None if _installed(folder) else str(folder)


def source_file(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    filename: str = code.co_filename if code is not None else f"<{func.__module__}>"
    path = Path(filename)
    return str(path.resolve()) if path.is_file() else filename


def _installed(folder: Path) -> bool:
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    return any(folder == root or root in folder.parents for root in roots)


def _register(target: str, function: ComponentFunction[..., Any]) -> str:
    """Remember ``function`` under its target. A module-level function replaces an earlier
    definition (a reloaded module, a re-run notebook cell); functions defined inside
    another function get ``#2``, ``#3``… so that each keeps its own target."""
    if "<locals>" in target:
        base, count = target, 1
        while target in _REGISTRY:
            count += 1
            target = f"{base}#{count}"
    _REGISTRY[target] = function
    return target


def summary(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    if not doc:
        return None
    return " ".join(doc.split("\n\n")[0].split())
