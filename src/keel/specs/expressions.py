"""``${{ … }}`` references and ``$[[ … ]]`` optional segments, as Azure ML writes them.

    python train.py --data ${{inputs.data}} $[[--lr ${{inputs.lr}}]] --out ${{outputs.model}}
    inputs: {data: ${{parent.jobs.prep.outputs.clean}}}

A reference is parsed into a :class:`Reference`; a command is rendered by
substituting values, dropping an optional segment whose inputs were not given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

REFERENCE = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
OPTIONAL_SEGMENT = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
_NAME = r"[A-Za-z_][\w\-]*"
_FORMS = {
    "inputs": re.compile(rf"^inputs\.({_NAME})$"),
    "outputs": re.compile(rf"^outputs\.({_NAME})$"),
    "search_space": re.compile(rf"^search_space\.({_NAME})$"),
    "parent.inputs": re.compile(rf"^parent\.inputs\.({_NAME})$"),
    "parent.outputs": re.compile(rf"^parent\.outputs\.({_NAME})$"),
    "parent.jobs": re.compile(rf"^parent\.jobs\.({_NAME})\.(inputs|outputs)\.({_NAME})$"),
    "trigger": re.compile(r"^trigger\.([\w.]+)$"),
    "name": re.compile(r"^name$"),
}


class ExpressionError(ValueError):
    """An expression that is not one of the supported forms."""


@dataclass(frozen=True)
class Reference:
    """One parsed ``${{ … }}``: what it names, and in which context."""

    # inputs, outputs, search_space, parent.inputs, parent.outputs, step, trigger or name
    context: str
    name: str
    step: str | None = None
    step_side: str | None = None  # inputs | outputs, for references to another step

    @property
    def text(self) -> str:
        if self.context == "step":
            return f"${{{{parent.jobs.{self.step}.{self.step_side}.{self.name}}}}}"
        if self.context == "name":
            return "${{name}}"
        return f"${{{{{self.context}.{self.name}}}}}"


def parse_reference(expression: str) -> Reference:
    """Parse the inside of ``${{ … }}``."""
    for context, pattern in _FORMS.items():
        match = pattern.match(expression)
        if match is None:
            continue
        if context == "parent.jobs":
            return Reference("step", match.group(3), match.group(1), match.group(2))
        if context == "name":
            return Reference("name", "name")
        return Reference(context, match.group(1))
    raise ExpressionError(
        f"'${{{{{expression}}}}}' is not a reference Keel knows; expected inputs.<name>, "
        "outputs.<name>, search_space.<name>, parent.inputs.<name>, parent.outputs.<name> "
        "or parent.jobs.<step>.outputs.<name>"
    )


def references_in(text: str) -> list[Reference]:
    return [parse_reference(match.group(1)) for match in REFERENCE.finditer(text)]


def whole_reference(value: object) -> Reference | None:
    """The reference when ``value`` is exactly one ``${{ … }}`` and nothing else."""
    if not isinstance(value, str):
        return None
    match = REFERENCE.fullmatch(value.strip())
    return parse_reference(match.group(1)) if match else None


def render(text: str, resolve: Callable[[Reference], str | None]) -> str:
    """Substitute every reference; an optional segment whose references resolve to
    None is dropped whole, a required reference that resolves to None is an error."""

    def segment(match: re.Match[str]) -> str:
        inner = match.group(1)
        values = [resolve(ref) for ref in references_in(inner)]
        if any(value is None for value in values):
            return ""
        return _substitute(inner, resolve)

    return _substitute(OPTIONAL_SEGMENT.sub(segment, text), resolve).strip()


def _substitute(text: str, resolve: Callable[[Reference], str | None]) -> str:
    def one(match: re.Match[str]) -> str:
        reference = parse_reference(match.group(1))
        value = resolve(reference)
        if value is None:
            raise ExpressionError(f"{reference.text} has no value")
        return value

    return REFERENCE.sub(one, text)
