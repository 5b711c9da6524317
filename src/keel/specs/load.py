"""Read a job or component file, apply ``--set`` overrides, resolve it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keel.specs.checks import File
from keel.specs.resolve import ComponentLookup, Resolver
from keel.specs.resolved import Component, ResolvedJob
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
