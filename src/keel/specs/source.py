"""YAML that remembers where each value came from, and errors that say so.

Every mapping and list read from a spec file keeps the line of each of its items,
so a problem found later (by pydantic, or when bindings are checked) can be
reported as ``pipeline.yml:14: jobs.train.inputs.data: …``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from keel.errors import InvalidInput


class SpecError(InvalidInput):
    """A spec file is malformed; the message names the file, line and field."""

    code = "invalid_spec"


class LocatedDict(dict[str, Any]):
    """A mapping from a YAML file, with the line of each key."""

    line: int = 0
    lines: dict[str, int]


class LocatedList(list[Any]):
    """A sequence from a YAML file, with the line of each item."""

    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    """Safe YAML, plus line numbers, and refusing duplicate keys (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LocatedDict:  # type: ignore[override]
        mapping = LocatedDict()
        mapping.line = node.start_mark.line + 1
        mapping.lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in mapping:
                raise SpecError(
                    f"{self.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                    f"(first on line {mapping.lines[key]})"
                )
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LocatedList:
        items = LocatedList(self.construct_object(child, deep=True) for child in node.value)
        items.line = node.start_mark.line + 1
        items.lines = [child.start_mark.line + 1 for child in node.value]
        return items


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _Loader.construct_mapping,
)
_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,
    _Loader.construct_sequence,
)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with line information; malformed YAML names file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it ({exc})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str) -> Any:
    loader = _Loader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{name}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def line_of(root: Any, path: Sequence[str | int]) -> int | None:
    """The line of the deepest item along ``path`` that the YAML file placed."""
    line = getattr(root, "line", None) or None
    node = root
    for part in path:
        if isinstance(node, LocatedDict) and isinstance(part, str) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class Source:
    """A spec file's name and parsed content, for locating problems in it."""

    def __init__(self, file: Path | str, root: Any) -> None:
        self.file = str(file)
        self.root = root

    def error(self, path: Sequence[str | int], message: str, *, hint: str | None = None) -> SpecError:
        line = line_of(self.root, path)
        where = f"{self.file}:{line}" if line else self.file
        field = dotted(path)
        return SpecError(f"{where}: {field + ': ' if field else ''}{message}", hint=hint)
