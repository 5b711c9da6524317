"""Components over a shop's orders (a CSV of ``order,amount``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, TypedDict

from keel.jobs.python_component import Input, Output, component


@component
def prep(
    raw: Annotated[str, Input(type="uri_file", description="Orders as CSV.")],
    clean: Annotated[str, Output(type="uri_folder")],
    min_amount: float = 0.0,
) -> int:
    """Keep the orders worth at least ``min_amount``; return how many were kept.

    The kept orders are written to ``clean/orders.csv``.
    """
    header, *rows = Path(raw).read_text().splitlines()
    kept = [row for row in rows if float(row.split(",")[1]) >= min_amount]
    Path(clean, "orders.csv").write_text("\n".join([header, *kept]) + "\n")
    return len(kept)


class Scores(TypedDict):
    total: float
    passed: bool
    note: str


@component(name="score_orders", version=2, environment="azureml:sklearn-1.5:1")
def score(
    data: Input(type="uri_folder"),  # type: ignore[valid-type]  # Azure's mldesigner style
    threshold: Annotated[float, Input(min=0, max=1000, description="Pass mark.")],
    label: str | None = None,
    strict: bool = False,
) -> Scores:
    """Sum the orders in ``data``; pass when the total reaches ``threshold``."""
    total = sum(float(row.split(",")[1]) for row in Path(data, "orders.csv").read_text().splitlines()[1:])
    passed = total >= threshold if strict else total > 0
    return {"total": total, "passed": passed, "note": f"{label or 'total'}: {total:g}"}


@component(is_deterministic=False)
def report(
    data: Annotated[str, Input(type="uri_folder")],
    summary: Annotated[str, Output(type="uri_file")],
    style: Literal["short", "long"] = "short",
) -> Output(type="string"):  # type: ignore[valid-type]
    """Describe ``data`` in one line, also written to the file ``summary``."""
    lines = Path(data, "orders.csv").read_text().splitlines()[1:]
    text = f"{len(lines)} orders" if style == "short" else json.dumps(lines)
    Path(summary).write_text(text)
    return text


@component
def count(items: int, scale: float = 1.0) -> float:
    return items * scale


@component
def explode(message: str) -> None:
    raise RuntimeError(message)


def double(value: int) -> int:
    """A plain function: ``python -m keel.function`` runs it too, though it is not a component."""
    return value * 2
