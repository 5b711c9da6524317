"""Turn the values written under ``inputs:``/``outputs:`` into checked bindings."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from keel.specs.checks import NO_LOCAL_FILES
from keel.specs.expressions import ExpressionError, Reference, whole_reference
from keel.specs.models import DATA_TYPES, LITERAL_TYPES, InputDecl, OutputDecl
from keel.specs.resolved import Binding, DataRef, OutputBinding
from keel.specs.source import Source

_URI_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
REMOTE_SCHEMES = {
    "azureml",
    "http",
    "https",
    "wasbs",
    "wasb",
    "abfss",
    "abfs",
    "adl",
    "s3",
    "gs",
    "gcs",
    "memory",
}
Path_ = tuple[str | int, ...]


def is_asset_reference(path: str) -> bool:
    """``azureml:name:version`` or ``azureml:name@latest`` (not ``azureml://…``)."""
    return path.startswith("azureml:") and not path.startswith("azureml://")


def data_path(raw: str, base: Path | None, source: Source, where: Path_, input_type: str) -> str:
    """A data path as the runner wants it: URIs and asset references as written, local
    paths absolute and checked to exist with the right kind (file or folder).

    Without a ``base`` (a spec sent over HTTP) only the workspace's own references are
    accepted: nothing that would make the server read its disk or fetch a URL."""
    if is_asset_reference(raw):
        return raw
    scheme = _URI_SCHEME.match(raw)
    if scheme is not None:
        name = scheme.group(1).lower()
        if name == "file":
            raw = raw[len("file://") :]
        elif name in REMOTE_SCHEMES and (base is not None or name == "azureml"):
            return raw
        elif name in REMOTE_SCHEMES:
            raise source.error(where, f"{name}:// data cannot be named here", hint=NO_LOCAL_FILES)
        else:
            raise source.error(
                where,
                f"unsupported URI scheme {name}://",
                hint=f"use one of {sorted(REMOTE_SCHEMES)}",
            )
    if base is None:
        raise source.error(where, "data cannot be a local path here", hint=NO_LOCAL_FILES)
    local = (base / Path(raw).expanduser()).resolve()
    if not local.exists():
        raise source.error(where, f"no such file or folder: {local}")
    if input_type == "uri_file" and not local.is_file():
        raise source.error(where, f"{local} is a folder, but the input's type is uri_file")
    if input_type == "uri_folder" and not local.is_dir():
        raise source.error(where, f"{local} is a file, but the input's type is uri_folder")
    return str(local)


def reference_or_error(value: Any, source: Source, where: Path_) -> Reference | None:
    try:
        return whole_reference(value)
    except ExpressionError as exc:
        raise source.error(where, str(exc)) from None


def literal_value(decl: InputDecl, value: Any, source: Source, where: Path_) -> Any:
    """Check ``value`` against a literal input's type, range and enum; returns it typed."""
    kind = decl.type
    if kind == "boolean":
        if not isinstance(value, bool):
            raise source.error(where, f"expected a boolean (true or false), got {value!r}")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise source.error(where, f"expected an integer, got {value!r}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise source.error(where, f"expected a number, got {value!r}")
    elif isinstance(value, dict | list):
        raise source.error(where, f"expected a string, got a {type(value).__name__}")
    else:
        value = str(value)
    if decl.min is not None and isinstance(value, int | float) and value < decl.min:
        raise source.error(where, f"{value} is below the minimum {decl.min:g}")
    if decl.max is not None and isinstance(value, int | float) and value > decl.max:
        raise source.error(where, f"{value} is above the maximum {decl.max:g}")
    if decl.enum is not None and value not in decl.enum:
        raise source.error(where, f"{value!r} is not one of {decl.enum}")
    return value


def infer_decl(value: Any) -> InputDecl:
    """The declaration an inline job's input implies (Azure infers it the same way)."""
    if isinstance(value, bool):
        return InputDecl(type="boolean")
    if isinstance(value, int):
        return InputDecl(type="integer")
    if isinstance(value, float):
        return InputDecl(type="number")
    if isinstance(value, dict):
        kind = value.get("type", "uri_folder")
        if kind in LITERAL_TYPES:
            return InputDecl(type=kind, optional="default" not in value and "value" not in value)
        return InputDecl(type=kind if kind in DATA_TYPES else "uri_folder", mode=value.get("mode"))
    return InputDecl(type="string")


def bind_value(
    decl: InputDecl, value: Any, *, source: Source, where: Path_, base: Path | None, allow_parent: bool
) -> Binding:
    """One input's binding: a reference to the parent or a step, data, or a literal."""
    reference = reference_or_error(value, source, where)
    if isinstance(value, dict) and reference is None:
        reference = reference_or_error(value.get("path"), source, (*where, "path"))
    if reference is not None:
        return _bind_reference(reference, source, where, allow_parent)
    if isinstance(value, dict):
        return _bind_dict(decl, value, source=source, where=where, base=base)
    if decl.is_literal:
        return Binding(kind="literal", value=literal_value(decl, value, source, where))
    if isinstance(value, str):
        return Binding(
            kind="data",
            data=DataRef(type=decl.type, path=data_path(value, base, source, where, decl.type)),
        )
    raise source.error(where, f"expected a path for this {decl.type} input, got {value!r}")


def _bind_reference(reference: Reference, source: Source, where: Path_, allow_parent: bool) -> Binding:
    if reference.context == "parent.inputs" and allow_parent:
        return Binding(kind="parent_input", name=reference.name)
    if reference.context == "step" and allow_parent:
        if reference.step_side == "outputs":
            return Binding(kind="step_output", name=reference.name, step=reference.step)
        return Binding(kind="step_input", name=reference.name, step=reference.step)
    if allow_parent:
        raise source.error(
            where,
            f"{reference.text} cannot be used here; a step's inputs refer to "
            "${{parent.inputs.<name>}} or ${{parent.jobs.<step>.outputs.<name>}}",
        )
    raise source.error(where, f"{reference.text} has nothing to refer to outside a pipeline")


def _bind_dict(
    decl: InputDecl, value: dict[str, Any], *, source: Source, where: Path_, base: Path | None
) -> Binding:
    unknown = sorted(set(value) - {"type", "path", "mode", "default", "value", "optional", "description"})
    if unknown:
        raise source.error(
            (*where, unknown[0]), f"unknown field {unknown[0]!r}", hint="expected type, path, mode"
        )
    kind = value.get("type", decl.type)
    if kind in LITERAL_TYPES:
        if "value" not in value and "default" not in value:
            raise source.error(where, f"a {kind} input needs a value")
        literal = value.get("value", value.get("default"))
        return Binding(kind="literal", value=literal_value(InputDecl(type=kind), literal, source, where))
    if kind not in DATA_TYPES:
        raise source.error(
            (*where, "type"),
            f"unknown input type {kind!r}",
            hint=f"expected one of {LITERAL_TYPES + DATA_TYPES}",
        )
    if (
        decl.type in DATA_TYPES
        and kind != decl.type
        and not (decl.type == "uri_folder" and kind == "mltable")
    ):
        raise source.error((*where, "type"), f"the input is declared {decl.type}, but this value is {kind}")
    if "path" not in value:
        raise source.error(where, f"a {kind} input needs a path")
    path = data_path(str(value["path"]), base, source, (*where, "path"), kind)
    return Binding(kind="data", data=DataRef(type=kind, path=path, mode=value.get("mode")))


def bind_output(
    decl: OutputDecl, value: Any, *, source: Source, where: Path_, allow_parent: bool
) -> OutputBinding:
    reference = reference_or_error(value, source, where)
    if reference is not None:
        if reference.context != "parent.outputs" or not allow_parent:
            allowed = "${{parent.outputs.<name>}}"
            raise source.error(where, f"an output can only be bound to {allowed}, not {reference.text}")
        return OutputBinding(decl=decl, parent_output=reference.name)
    if value is None:
        return OutputBinding(decl=decl)
    if not isinstance(value, dict):
        raise source.error(where, f"expected an output specification (type, mode, path), got {value!r}")
    try:
        merged = OutputDecl.model_validate({**decl.model_dump(exclude_none=True), **value})
    except ValueError as exc:
        raise source.error(where, f"invalid output: {exc}".splitlines()[0]) from None
    return OutputBinding(decl=merged)
