"""Read a job or component file, apply ``--set`` overrides, resolve it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel.specs.checks import File
from keel.specs.resolve import ComponentLookup, Resolver
from keel.specs.resolved import Component, ResolvedJob, Step
from keel.specs.source import LocatedDict, LocatedList, Source, SpecError, parse_yaml, read_yaml


def load_job(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    lookup_component: ComponentLookup | None = None,
) -> ResolvedJob:
    """Load and fully check a job file; nothing is run or written."""
    file = Path(path).expanduser().resolve()
    raw = read_yaml(file)
    for override in overrides:
        apply_override(raw, override)
    return Resolver(lookup_component).job(raw, Source(file, raw), file.parent)


def load_sent_job(
    document: str | dict[str, Any],
    *,
    name: str = "<request>",
    lookup_component: ComponentLookup | None = None,
) -> ResolvedJob:
    """Check a job sent over HTTP (YAML text or a parsed mapping); it may name no local files."""
    raw = parse_yaml(document, name) if isinstance(document, str) else document
    job = Resolver(lookup_component).job(raw, Source(name, raw), None)
    _refuse_local_outputs(job.root, name)
    return job


def _refuse_local_outputs(step: Step, name: str, where: str = "") -> None:
    """Outputs written to a ``path`` must go to a datastore, never to the server's own disk."""
    for key, binding in step.outputs.items():
        path = binding.decl.path
        if path is not None and not path.startswith("azureml://"):
            raise SpecError(f"{name}: {where}outputs.{key}.path: an output cannot be a local path here")
    if step.component.code is not None:  # every local path was refused while resolving
        raise SpecError(f"{name}: {where}code: code cannot be a local path here")
    for child_name, child in (step.component.steps or {}).items():
        _refuse_local_outputs(child, name, f"{where}jobs.{child_name}.")


def load_component(
    path: str | Path, *, lookup_component: ComponentLookup | None = None
) -> tuple[Component, Any]:
    """Load and check a component file; returns it resolved and as parsed."""
    file = Path(path).expanduser().resolve()
    resolver = Resolver(lookup_component)
    component = resolver.component(str(file), File(Source(file, None), file.parent), ())
    return component, read_yaml(file)


def apply_override(raw: Any, override: str) -> None:
    """``--set jobs.train.inputs.data.path=./local.csv``: the value is read as YAML."""
    key, separator, text = override.partition("=")
    if not separator or not key.strip():
        raise SpecError(f"--set {override!r}: expected path=value")
    parts = [part for part in key.strip().split(".") if part]
    value = parse_yaml(text, f"--set {key}") if text.strip() else ""
    node = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _list_item(node, part, parts[: depth + 1], override)
            continue
        if not isinstance(node, dict):
            raise SpecError(f"--set {key}: {'.'.join(parts[:depth])} is not a mapping")
        child = node.get(part)
        if child is None:
            child = LocatedDict()
            child.lines = {}
            node[part] = child
        node = child
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, override)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"--set {key}: {'.'.join(parts[:-1])} is not a mapping")


def _list_item(node: LocatedList | list[Any], part: str, prefix: list[str], override: str) -> Any:
    return node[_index(node, part, override)]


def _index(node: list[Any], part: str, override: str) -> int:
    try:
        index = int(part)
    except ValueError:
        raise SpecError(f"--set {override!r}: {part!r} must be a list index") from None
    if not 0 <= index < len(node):
        raise SpecError(f"--set {override!r}: index {index} is out of range")
    return index
