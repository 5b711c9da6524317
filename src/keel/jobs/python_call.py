"""Call a Python component's function: in this process (the runner's fast path), or
from ``python -m keel.function`` (the subprocess its command runs).

Both read arguments the same way — a literal input may arrive typed or as the text
a command line carries (``"3"``, ``"0.5"``, ``"True"``) — and both give back the
function's literal outputs by name, so a step behaves the same whichever way it ran.
A literal output crosses a process boundary as a JSON file at the path
``${{outputs.<name>}}`` names (:func:`write_output_value`).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.jobs.python_component import (
    COMMAND_PREFIX,
    ComponentFunction,
    command_line,
    registered,
)
from keel.jobs.python_signature import (
    FunctionError,
    FunctionSpec,
    Input,
    Scalar,
    check_literal,
    check_returned,
    read_component,
)

if TYPE_CHECKING:
    from keel.specs.resolved import Component

_A_VALUE = {"integer": "an integer", "number": "a number", "boolean": "true or false"}


def function_target(component: Component) -> str | None:
    """``module:qualname`` when ``component``'s command is exactly the one a Python
    component with its inputs and outputs declares; otherwise None (run the command)."""
    command = component.command
    if component.kind != "command" or not command or not command.startswith(COMMAND_PREFIX):
        return None
    try:
        words = shlex.split(command[len(COMMAND_PREFIX) :])
    except ValueError:
        return None
    if not words:
        return None
    inputs = ((name, decl.optional) for name, decl in component.inputs.items())
    return words[0] if command == command_line(words[0], inputs, component.outputs) else None


def call_function(
    target: str, arguments: Mapping[str, object], *, code: str | None = None
) -> dict[str, Scalar]:
    """Call the function ``target`` names with its inputs and data-output paths, by name;
    return its literal outputs by name (``{"output": value}`` for a plain return).

    Inputs left out take their declared default (or None when optional); values for
    literal outputs in ``arguments`` are ignored. The function registered by
    ``@keel.component`` in this process is used when there is one; otherwise
    ``module`` is imported, from ``code`` if given. Exceptions the function raises
    propagate unchanged; bad arguments raise :class:`FunctionError`.
    """
    spec = load_function(target, code=code)
    result = spec.function(**prepare_arguments(spec, arguments))
    return collect_outputs(spec, result)


def load_function(target: str, *, code: str | None = None) -> FunctionSpec:
    """The function ``module:qualname`` names, read as a component."""
    found = registered(target)
    if found is not None:
        return found.spec
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise FunctionError(f"{target!r} is not a function reference (module:function)")
    if "<locals>" in qualname:
        raise FunctionError(
            f"{target} was defined inside another function: only the process that defined "
            "it can run it (define the component at module level to run it anywhere)"
        )
    if code is not None and code not in sys.path:
        sys.path.insert(0, code)
    module = _import(module_name)
    found = registered(target)  # importing the module ran its decorators
    if found is not None:
        return found.spec
    value: Any = module
    for part in qualname.split("."):
        value = getattr(value, part, None)
    if isinstance(value, ComponentFunction):
        return value.spec
    if not inspect.isfunction(value):
        raise FunctionError(f"{target}: {module_name} has no function {qualname}")
    return read_component(value, f"function {qualname}")


def prepare_arguments(spec: FunctionSpec, arguments: Mapping[str, object]) -> dict[str, object]:
    """The keyword arguments to call ``spec.function`` with; folders for data outputs exist."""
    unknown = [name for name in arguments if name not in spec.inputs and name not in spec.outputs]
    if unknown:
        raise FunctionError(f"{spec.label} has no input or output {unknown[0]!r} ({_names(spec)})")
    keywords: dict[str, object] = {}
    for name, decl in spec.inputs.items():
        keywords[name] = _input_value(f"{spec.label}: input {name!r}", decl, arguments.get(name))
    for name in spec.data_outputs:
        keywords[name] = _output_path(spec, name, arguments.get(name))
    return keywords


def collect_outputs(spec: FunctionSpec, result: object) -> dict[str, Scalar]:
    """The literal outputs in what the function returned, checked against their types."""
    if spec.returns == "nothing":
        if result is not None:
            raise FunctionError(
                f"{spec.label} returned {result!r:.60} but declares no output; "
                "annotate its return type (-> float, or a TypedDict of literals)"
            )
        return {}
    if spec.returns == "value":
        where = f"{spec.label}: output 'output'"
        return {"output": check_returned(spec.outputs["output"].type or "", result, where)}
    if not isinstance(result, Mapping):
        raise FunctionError(f"{spec.label} must return a dict of its outputs, got {result!r}")
    declared = spec.literal_outputs
    extra = sorted(set(result) - set(declared))
    missing = [name for name in declared if name not in result]
    if extra or missing:
        problem = f"no output {extra[0]!r}" if extra else f"output {missing[0]!r} is missing"
        raise FunctionError(f"{spec.label} returned {problem} (outputs: {', '.join(declared)})")
    return {
        name: check_returned(spec.outputs[name].type or "", result[name], f"{spec.label}: output {name!r}")
        for name in declared
    }


def parse_command_line(spec: FunctionSpec, argv: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``--name value`` (or ``--name=value``) pairs, as (arguments, literal-output files)."""
    given: dict[str, str] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        name, equals, value = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if not name:
            raise FunctionError(f"expected --<name> <value>, got {token!r}")
        if not equals:
            if index + 1 >= len(argv):
                raise FunctionError(f"--{name} needs a value")
            index += 1
            value = argv[index]
        index += 1
        if name not in spec.inputs and name not in spec.outputs:
            raise FunctionError(f"{spec.label} has no input or output {name!r} ({_names(spec)})")
        if name in given:
            raise FunctionError(f"--{name} is given twice")
        given[name] = value
    files = {name: given.pop(name) for name in spec.literal_outputs if name in given}
    return given, files


def write_output_value(path: str | os.PathLike[str], value: Scalar) -> None:
    """Write a literal output's value as JSON, atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(value, file)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise  # the module exists; something it imports does not: show the traceback
        raise FunctionError(
            f"cannot import {module_name}: run from the component's code folder, or put it on PYTHONPATH"
        ) from None


def _input_value(where: str, decl: Input, value: object) -> object:
    if value is None:
        if decl.default is not None:
            return decl.default
        if decl.optional:
            return None
        raise FunctionError(f"{where} is required")
    if not decl.is_literal:
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise FunctionError(f"{where}: expected a path, got {value!r}")
    if isinstance(value, str) and decl.type != "string":
        value = _parse_text(decl.type or "", value, where)
    return check_literal(decl, value, where)


def _parse_text(kind: str, text: str, where: str) -> Scalar:
    if kind == "boolean" and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        pass
    raise FunctionError(f"{where}: expected {_A_VALUE[kind]}, got {text!r}")


def _output_path(spec: FunctionSpec, name: str, value: object) -> str:
    if not isinstance(value, str | os.PathLike):
        raise FunctionError(f"{spec.label}: output {name!r} needs the path to write into")
    path = os.fspath(value)
    folder = os.path.dirname(path) if spec.outputs[name].type == "uri_file" else path
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def _names(spec: FunctionSpec) -> str:
    inputs = ", ".join(spec.inputs) or "none"
    outputs = ", ".join(spec.outputs) or "none"
    return f"inputs: {inputs}; outputs: {outputs}"
