"""Read a Python function's signature as a component's inputs and outputs.

    @keel.component
    def train(
        data: Annotated[str, keel.Input(type="uri_folder")],  # data in: the function gets a path
        model: Annotated[str, keel.Output(type="mlflow_model")],  # data out: a folder to write
        epochs: int,  # literal in, required
        lr: float = 0.01,  # literal in, with a default
        seed: int | None = None,  # literal in, optional
    ) -> float:  # a literal ("control") output named "output"
        ...

``keel.Input(...)`` and ``keel.Output(...)`` may also stand alone as the
annotation, as in Azure ML's ``mldesigner`` (``data: Input(type="uri_file")``);
``Annotated[str, …]`` says the same thing in a form type checkers accept. Several
literal outputs are declared by returning a ``TypedDict`` whose fields (all
required) are ``int``/``float``/``str``/``bool``. Anything else is refused when the function is
decorated, with the function and the parameter named.

This module does not import the spec layer (pydantic), so that ``python -m
keel.function`` starts quickly; declarations are plain dataclasses here and become
:class:`keel.specs.models.InputDecl` only when a component's spec is built.
"""

from __future__ import annotations

import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any, Literal

from keel.errors import InvalidInput

# The same names as keel.specs.models (a test keeps them equal); repeated here so that
# reading a signature does not import pydantic.
LITERAL_TYPES = ("string", "integer", "number", "boolean")
DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
Scalar = str | int | float | bool
_PYTHON_TYPES: dict[object, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_EMPTY = inspect.Parameter.empty


class FunctionError(InvalidInput):
    """Raised when a Python component or pipeline is declared, called or run wrongly:
    an annotation Keel cannot read, an argument of the wrong type, a missing input."""

    code = "invalid_function"


@dataclass(frozen=True)
class Input:
    """An input's declaration, written as (part of) a parameter's annotation.

    ``type`` is a data type (``uri_folder``, ``uri_file``, ``mltable``,
    ``mlflow_model``, ``custom_model``) or a literal one (``string``, ``integer``,
    ``number``, ``boolean``). Left out, it follows the annotated Python type
    (``Annotated[int, Input(min=1)]`` is an integer), or is ``uri_folder`` when
    ``Input`` is the whole annotation. A data input's function receives a path (str).
    """

    type: str | None = None
    _: KW_ONLY
    optional: bool = False
    description: str | None = None
    default: Scalar | None = None
    min: float | None = None
    max: float | None = None
    enum: Sequence[Scalar] | None = None
    mode: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in LITERAL_TYPES + DATA_TYPES:
            known = ", ".join(LITERAL_TYPES + DATA_TYPES)
            raise FunctionError(f"Input(type={self.type!r}) is not a type Keel knows ({known})")
        if self.enum is not None:
            object.__setattr__(self, "enum", tuple(self.enum))

    @property
    def is_literal(self) -> bool:
        return self.type in LITERAL_TYPES

    def declaration(self) -> dict[str, Any]:
        """The fields of the ``InputDecl`` this declares, as a spec file would write them."""
        written: dict[str, Any] = {"type": self.type or "uri_folder"}
        if self.optional:
            written["optional"] = True
        for name in ("description", "default", "min", "max", "mode", "path"):
            value = getattr(self, name)
            if value is not None:
                written[name] = value
        if self.enum is not None:
            written["enum"] = list(self.enum)
        return written


@dataclass(frozen=True)
class Output:
    """An output's declaration.

    As a parameter's annotation it declares a data output (``uri_folder`` unless
    ``type`` says otherwise): the function receives the path to write into. As the
    return annotation, ``Output(type="number")`` declares the literal output
    ``output`` (so does ``-> float``).
    """

    type: str | None = None
    _: KW_ONLY
    description: str | None = None
    mode: str | None = None
    is_control: bool | None = None

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in LITERAL_TYPES + DATA_TYPES:
            known = ", ".join(DATA_TYPES + LITERAL_TYPES)
            raise FunctionError(f"Output(type={self.type!r}) is not a type Keel knows ({known})")

    @property
    def is_literal(self) -> bool:
        return self.type in LITERAL_TYPES

    def declaration(self) -> dict[str, Any]:
        """The fields of the ``OutputDecl`` this declares."""
        written: dict[str, Any] = {"type": self.type or "uri_folder"}
        for name in ("description", "mode", "is_control"):
            value = getattr(self, name)
            if value is not None:
                written[name] = value
        return written


Returns = Literal["nothing", "value", "mapping"]


@dataclass(frozen=True)
class FunctionSpec:
    """A function read as a component: its inputs, its outputs, and how it returns."""

    function: Callable[..., Any]
    label: str  # "component train", for messages
    inputs: dict[str, Input]
    outputs: dict[str, Output]  # data outputs (parameters), then literal outputs (returned)
    returns: Returns = "nothing"

    @property
    def data_outputs(self) -> list[str]:
        return [name for name, output in self.outputs.items() if not output.is_literal]

    @property
    def literal_outputs(self) -> list[str]:
        return [name for name, output in self.outputs.items() if output.is_literal]


_ANNOTATE = (
    "annotate it int, float, str or bool (a literal), Annotated[str, keel.Input(type=...)] "
    "(data in) or Annotated[str, keel.Output(type=...)] (data out)"
)
_A_VALUE = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
}


def read_component(func: Callable[..., Any], label: str) -> FunctionSpec:
    """The inputs and outputs ``func``'s signature declares, or :class:`FunctionError`."""
    hints = _annotations(func, label)
    inputs: dict[str, Input] = {}
    outputs: dict[str, Output] = {}
    for param in _parameters(func, label):
        base, marker, nullable = _split(_annotation(hints, param, label))
        if isinstance(marker, Output):
            outputs[param.name] = _data_output(
                f"{label}: parameter {param.name!r}", param, base, marker, nullable
            )
        else:
            inputs[param.name] = _input(label, param, base, marker, nullable, data_default=False)
    returns, returned = _returned(label, hints.get("return", _EMPTY))
    clash = sorted(set(returned) & (set(inputs) | set(outputs)))
    if clash:
        raise FunctionError(
            f"{label}: the returned output {clash[0]!r} has the name of a parameter; rename one"
        )
    return FunctionSpec(func, label, inputs, {**outputs, **returned}, returns)


def read_pipeline_inputs(func: Callable[..., Any], label: str) -> dict[str, Input]:
    """A pipeline function's parameters as pipeline inputs; a data input's default is a path."""
    hints = _annotations(func, label)
    inputs: dict[str, Input] = {}
    for param in _parameters(func, label):
        base, marker, nullable = _split(_annotation(hints, param, label))
        if isinstance(marker, Output):
            raise FunctionError(
                f"{label}: parameter {param.name!r}: a pipeline's outputs are the step outputs "
                "it returns ({'name': step.outputs.x}), not parameters"
            )
        inputs[param.name] = _input(label, param, base, marker, nullable, data_default=True)
    return inputs


def check_literal(decl: Input, value: object, where: str) -> Scalar:
    """``value`` as the literal input ``decl`` takes it (a number becomes a float), checked
    against its range and choices; :class:`FunctionError` naming ``where`` otherwise."""
    kind = decl.type or "string"
    checked = _typed(kind, value)
    if checked is None or (isinstance(checked, float) and math.isnan(checked)):
        raise FunctionError(f"{where}: expected {_A_VALUE[kind]}, got {value!r}")
    if isinstance(checked, int | float) and not isinstance(checked, bool):
        if decl.min is not None and checked < decl.min:
            raise FunctionError(f"{where}: {checked} is below the minimum {decl.min:g}")
        if decl.max is not None and checked > decl.max:
            raise FunctionError(f"{where}: {checked} is above the maximum {decl.max:g}")
    if decl.enum is not None and checked not in decl.enum:
        raise FunctionError(f"{where}: {checked!r} is not one of {list(decl.enum)}")
    return checked


def check_returned(kind: str, value: object, where: str) -> Scalar:
    """A returned literal output's value as its declared type takes it (strictly: a
    string output must be a str; an int is a number)."""
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise FunctionError(f"{where}: expected {_A_VALUE[kind]}, got {value!r}")


def python_type_name(kind: str) -> str:
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}[kind]


# -- reading annotations --------------------------------------------------------------


def _annotations(func: Callable[..., Any], label: str) -> dict[str, Any]:
    if not inspect.isfunction(func):
        raise FunctionError(f"{label}: expected a function, got {type(func).__name__}")
    if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
        raise FunctionError(f"{label}: a component is a plain function, not async or a generator")
    try:
        return inspect.get_annotations(func, eval_str=True)
    except Exception as exc:  # a NameError for a type defined where the function cannot see it
        raise FunctionError(
            f"{label}: its annotations cannot be read ({exc}); "
            "types named in annotations must be importable from the function's module"
        ) from None


def _parameters(func: Callable[..., Any], label: str) -> list[inspect.Parameter]:
    params = list(inspect.signature(func).parameters.values())
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise FunctionError(
                f"{label}: parameter {param.name!r}: inputs are passed by name, so "
                "*args, **kwargs and positional-only parameters cannot be inputs"
            )
    return params


def _annotation(hints: dict[str, Any], param: inspect.Parameter, label: str) -> Any:
    if param.name not in hints:
        raise FunctionError(f"{label}: parameter {param.name!r} has no annotation; {_ANNOTATE}")
    return hints[param.name]


def _split(annotation: Any) -> tuple[Any, Input | Output | None, bool]:
    """(the Python type or None, the Input/Output marker or None, whether None is allowed)."""
    marker = _marker(annotation)
    if marker is not None:
        return None, marker, False
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        found = [m for m in map(_marker, extras) if m is not None]
        inner, _, nullable = _split(base)
        return inner, (found[0] if found else None), nullable
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        rest = [member for member in members if member is not type(None)]
        if len(rest) == 1 and len(members) == 2:
            inner, marker, _ = _split(rest[0])
            return inner, marker, True
    return annotation, None, False


def _marker(value: object) -> Input | Output | None:
    if isinstance(value, Input | Output):
        return value
    if value is Input:
        return Input()
    if value is Output:
        return Output()
    return None


def _literal_type(base: Any) -> tuple[str, tuple[Scalar, ...] | None] | None:
    """The literal type (and choices) a Python type stands for, if it stands for one."""
    if isinstance(base, type) and base in _PYTHON_TYPES:
        return _PYTHON_TYPES[base], None
    if typing.get_origin(base) is Literal:
        values = typing.get_args(base)
        kinds = {_natural_type(value) for value in values}
        if len(kinds) == 1 and kinds <= {"string", "integer"}:
            return kinds.pop() or "string", values
    return None


def _natural_type(value: object) -> str | None:
    for python_type, kind in _PYTHON_TYPES.items():
        if type(value) is python_type:
            return kind
    return None


def _describe(base: Any) -> str:
    return base.__name__ if isinstance(base, type) else repr(base)


# -- inputs -----------------------------------------------------------------------------


def _input(
    label: str,
    param: inspect.Parameter,
    base: Any,
    marker: Input | Output | None,
    nullable: bool,
    *,
    data_default: bool,
) -> Input:
    where = f"{label}: parameter {param.name!r}"
    declared = marker if isinstance(marker, Input) else Input()
    kind = _input_type(where, base, declared)
    natural = _literal_type(base) if base is not None else None
    enum = declared.enum if declared.enum is not None else (natural[1] if natural else None)
    default = _default(where, param.default, declared)
    optional = declared.optional or nullable or param.default is None
    if kind in DATA_TYPES:
        path = _data_default(where, default, declared.path, allowed=data_default)
        return replace(declared, type=kind, optional=optional, default=None, path=path)
    if declared.path is not None:
        raise FunctionError(f"{where}: a literal input has no path")
    decl = replace(declared, type=kind, optional=optional, enum=enum, default=None)
    if default is not None:
        default = check_literal(decl, default, f"{where}: default")
    return replace(decl, default=default)


def _input_type(where: str, base: Any, declared: Input) -> str:
    if base is None:
        return declared.type or "uri_folder"
    natural = _literal_type(base)
    if natural is None:
        raise FunctionError(f"{where}: {_describe(base)} is not a type Keel can pass; {_ANNOTATE}")
    if declared.type is None or declared.type == natural[0]:
        return natural[0]
    if natural[0] == "string" and declared.type in DATA_TYPES:
        return declared.type
    raise FunctionError(f"{where}: annotated {_describe(base)} but declared Input(type={declared.type!r})")


def _default(where: str, python_default: object, declared: Input) -> Any:
    given = None if python_default is _EMPTY else python_default
    if given is not None and declared.default is not None and given != declared.default:
        raise FunctionError(
            f"{where}: the default {given!r} differs from Input(default={declared.default!r})"
        )
    return given if given is not None else declared.default


def _data_default(where: str, default: Any, path: str | None, *, allowed: bool) -> str | None:
    if default is None and path is None:
        return None
    if not allowed:
        raise FunctionError(
            f"{where}: a component's data input takes no default path; "
            "bind it in the pipeline (a pipeline parameter may have one)"
        )
    if default is not None and path is not None and os.fspath(default) != path:
        raise FunctionError(f"{where}: give the default path once (default or Input(path=...))")
    chosen = default if default is not None else path
    if not isinstance(chosen, str | os.PathLike):
        raise FunctionError(f"{where}: a data input's default must be a path, got {chosen!r}")
    return os.fspath(chosen)


def _typed(kind: str, value: object) -> Scalar | None:
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "string":
        return str(value) if isinstance(value, str | int | float) else None
    if isinstance(value, bool):
        return None
    if kind == "integer":
        return value if isinstance(value, int) else None
    return float(value) if isinstance(value, int | float) else None


# -- outputs ----------------------------------------------------------------------------


def _data_output(where: str, param: inspect.Parameter, base: Any, marker: Output, nullable: bool) -> Output:
    kind = marker.type or "uri_folder"
    if kind in LITERAL_TYPES:
        raise FunctionError(
            f"{where}: a literal output is returned, not passed; "
            f"annotate the return instead (-> {python_type_name(kind)})"
        )
    if (base is not None and base is not str) or nullable:
        raise FunctionError(
            f"{where}: a data output's parameter receives the path to write into; "
            "annotate it Annotated[str, keel.Output(...)]"
        )
    if param.default is not _EMPTY:
        raise FunctionError(f"{where}: an output parameter takes no default")
    return replace(marker, type=kind)


def _returned(label: str, annotation: Any) -> tuple[Returns, dict[str, Output]]:
    if annotation is _EMPTY or annotation is None or annotation is type(None):
        return "nothing", {}
    if not typing.is_typeddict(annotation):
        return "value", {"output": _literal_output(label, "output", annotation)}
    try:
        hints = typing.get_type_hints(annotation, include_extras=True)
    except Exception as exc:
        raise FunctionError(f"{label}: its return type cannot be read ({exc})") from None
    if not hints or annotation.__optional_keys__:
        raise FunctionError(
            f"{label}: the returned {annotation.__name__} must have fields, all required "
            "(every declared output is written each time the step runs)"
        )
    return "mapping", {key: _literal_output(label, key, hint) for key, hint in hints.items()}


def _literal_output(label: str, name: str, annotation: Any) -> Output:
    where = f"{label}: returned output {name!r}"
    base, marker, nullable = _split(annotation)
    if isinstance(marker, Input) or nullable:
        raise FunctionError(f"{where}: return int, float, str or bool (or a TypedDict of them)")
    declared = marker if isinstance(marker, Output) else Output()
    natural = _literal_type(base) if base is not None else None
    if base is not None and natural is None:
        raise FunctionError(
            f"{where}: {_describe(base)} cannot be returned; "
            "return int, float, str or bool (or a TypedDict of them)"
        )
    kind = declared.type or (natural[0] if natural else "uri_folder")
    if kind in DATA_TYPES:
        raise FunctionError(
            f"{where}: data is written into an Output parameter, not returned; "
            "a returned output is an int, float, str or bool"
        )
    if natural is not None and natural[0] != kind:
        raise FunctionError(f"{where}: annotated {_describe(base)} but declared Output({kind!r})")
    return replace(declared, type=kind)
