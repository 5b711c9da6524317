"""A resolved job flattened into nodes the runner schedules.

Nested pipelines become nodes too: a pipeline node "starts" when its inputs are
known (so its children may start) and "finishes" when its children have. Node
paths are step names joined by ``/`` (``""`` is the root), which is also how
``keel job show`` names steps of nested pipelines.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.specs.resolved import Binding, Step


class State(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (State.COMPLETED, State.FAILED, State.CANCELED)


@dataclass(frozen=True)
class Value:
    """An input or output as the runner hands it to a step: a literal, or data on disk."""

    type: str
    literal: Any = None
    path: Path | None = None
    uri: str | None = None  # where it came from, for lineage
    digest: str | None = None  # content digest of data; None when it cannot be known

    @property
    def is_data(self) -> bool:
        return self.path is not None

    def as_argument(self) -> str:
        if self.path is not None:
            return str(self.path)
        return "" if self.literal is None else str(self.literal)


@dataclass
class Node:
    path: str
    step: Step
    parent: str | None
    job_id: int = 0
    job_name: str = ""
    state: State = State.PENDING
    inputs: dict[str, Value | None] = field(default_factory=dict)
    outputs: dict[str, Value] = field(default_factory=dict)
    reason: str | None = None
    cache_key: str | None = None
    reuse_note: str | None = None

    @property
    def is_pipeline(self) -> bool:
        return self.step.kind == "pipeline"

    def sibling(self, name: str) -> str:
        return f"{self.parent}/{name}" if self.parent else name


def flatten(root: Step) -> dict[str, Node]:
    """Every node, root first, parents before their children."""
    nodes: dict[str, Node] = {"": Node("", root, None)}
    _add_children(nodes, nodes[""])
    return nodes


def _add_children(nodes: dict[str, Node], parent: Node) -> None:
    for name, step in (parent.step.component.steps or {}).items():
        path = f"{parent.path}/{name}" if parent.path else name
        node = Node(path, step, parent.path)
        nodes[path] = node
        if step.kind == "pipeline":
            _add_children(nodes, node)


def waits_for(node: Node, nodes: dict[str, Node]) -> set[str]:
    """The nodes that must have finished (or started, for the parent) before this one starts."""
    needed = {node.sibling(upstream) for upstream in node.step.upstream()}
    if node.parent is not None:
        needed.add(node.parent)
    return {path for path in needed if path in nodes}


def children(node: Node, nodes: dict[str, Node]) -> list[Node]:
    return [other for other in nodes.values() if other.parent == node.path]


def downstream(path: str, nodes: dict[str, Node]) -> set[str]:
    """Everything that depends on ``path``, directly or through others (or inside it)."""
    found: set[str] = set()
    frontier = [path]
    while frontier:
        current = frontier.pop()
        for other in nodes.values():
            if other.path in found or other.path == current:
                continue
            if current in waits_for(other, nodes):
                found.add(other.path)
                frontier.append(other.path)
    return found


def binding_source(node: Node, binding: Binding, nodes: dict[str, Node]) -> Value | None:
    """The value a parent or sibling binding refers to (None if it has none)."""
    if binding.kind == "parent_input":
        parent = nodes[node.parent] if node.parent is not None else None
        return parent.inputs.get(binding.name or "") if parent is not None else None
    sibling = nodes.get(node.sibling(binding.step or ""))
    if sibling is None:
        return None
    side = sibling.outputs if binding.kind == "step_output" else sibling.inputs
    return side.get(binding.name or "")
