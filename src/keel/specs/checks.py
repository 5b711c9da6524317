"""Checks over a resolved graph, and pydantic's complaints turned into located errors."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from keel.specs.models import InputDecl, OutputDecl
from keel.specs.resolved import Binding, Step
from keel.specs.source import Source

Where = tuple[str | int, ...]


NO_LOCAL_FILES = (
    "a spec sent over HTTP names no local files: register components and data first "
    "and refer to them as azureml:<name>:<version> or azureml://datastores/<datastore>/paths/<path>"
)


class File:
    """A spec file being resolved: where problems are reported, what paths are relative to.

    ``base`` is None for a spec that names no local files (one sent over HTTP): every
    local path in it is refused rather than resolved against the server's disk.
    """

    def __init__(self, source: Source, base: Path | None) -> None:
        self.source = source
        self.base = base

    def error(self, where: Where, message: str, *, hint: str | None = None) -> Exception:
        return self.source.error(where, message, hint=hint)

    def local_base(self, where: Where, what: str) -> Path:
        """The folder local paths are relative to, when this spec may name local files."""
        if self.base is None:
            raise self.error(where, f"{what} cannot be a local path here", hint=NO_LOCAL_FILES)
        return self.base


def check_wiring(
    steps: dict[str, Step],
    parent_inputs: dict[str, InputDecl],
    parent_outputs: dict[str, OutputDecl],
    file: File,
    where: Where,
) -> None:
    """Every reference from a step points at something that exists."""
    for name, step in steps.items():
        for key, binding in step.inputs.items():
            at = (*where, name, "inputs", key)
            if binding.kind == "parent_input" and binding.name not in parent_inputs:
                known = ", ".join(parent_inputs) or "none"
                reference = f"${{{{parent.inputs.{binding.name}}}}}"
                raise file.error(at, f"{reference} names no pipeline input (inputs: {known})")
            if binding.kind in ("step_output", "step_input"):
                _check_step_reference(steps, binding, file, at)
        for key, output in step.outputs.items():
            if output.parent_output is not None and output.parent_output not in parent_outputs:
                known = ", ".join(parent_outputs) or "none"
                reference = f"${{{{parent.outputs.{output.parent_output}}}}}"
                message = f"{reference} names no pipeline output (outputs: {known})"
                raise file.error((*where, name, "outputs", key), message)


def _check_step_reference(steps: dict[str, Step], binding: Binding, file: File, at: Where) -> None:
    target = steps.get(binding.step or "")
    if target is None:
        raise file.error(at, f"there is no step {binding.step!r} (steps: {', '.join(steps)})")
    side = target.component.outputs if binding.kind == "step_output" else target.component.inputs
    if binding.name not in side:
        what = "outputs" if binding.kind == "step_output" else "inputs"
        known = ", ".join(side) or "none"
        message = f"step {binding.step!r} has no {what[:-1]} {binding.name!r} ({what}: {known})"
        raise file.error(at, message)


def check_acyclic(steps: dict[str, Step], file: File, where: Where) -> None:
    """Depth-first search; a step met again while still on the path closes a cycle."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        path.append(name)
        for upstream in sorted(steps[name].upstream()):
            if upstream in path:
                cycle = [*path[path.index(upstream) :], upstream]
                raise file.error((*where, upstream), f"steps form a cycle: {' → '.join(cycle)}")
            if upstream not in done and upstream in steps:
                visit(upstream)
        path.pop()
        done.add(name)

    for name in steps:
        if name not in done:
            visit(name)


def first_problem(exc: ValidationError, model: type[BaseModel], file: File, where: Where) -> Exception:
    """The first thing pydantic found wrong, located in the file and said plainly."""
    problem = exc.errors()[0]
    location = tuple(problem["loc"])
    kind = problem["type"]
    field = str(location[-1]) if location else ""
    if kind == "extra_forbidden":
        owner = _model_at(model, location[:-1])
        known = ", ".join(sorted(f.alias or n for n, f in owner.model_fields.items())) if owner else ""
        hint = f"expected one of: {known}" if known else None
        return file.error((*where, *location), f"unknown field {field!r}", hint=hint)
    if kind == "missing":
        return file.error((*where, *location[:-1]), f"{field!r} is required")
    message = problem["msg"].removeprefix("Value error, ")
    if "input" in problem and kind != "value_error":
        message = f"{message} (got {problem['input']!r:.80})"
    return file.error((*where, *location), message)


def _model_at(model: type[BaseModel], location: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in location:
        if not (isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(part)
        if field is not None:  # otherwise a key of a mapping field: stay on its model
            current = _model_type(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_type(annotation: Any) -> Any:
    """The model inside an annotation such as ``Limits | None`` or ``dict[str, InputDecl]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_type(argument)
        if found is not None:
            return found
    return None
