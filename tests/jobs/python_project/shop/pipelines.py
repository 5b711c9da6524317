"""Pipelines composing the shop's components."""

from __future__ import annotations

from typing import Annotated, Any

from keel.jobs.python_component import Input
from keel.jobs.python_pipeline import PipelineFunction, pipeline
from shop.components import count, prep, report, score


@pipeline(experiment_name="shop", max_concurrency=2, tags={"team": "data"})
def orders(
    raw: Annotated[str, Input(type="uri_file")],
    min_amount: float = 10.0,
    label: str | None = None,
):
    """Prepare the orders, then score them."""
    prepared = prep(raw=raw, min_amount=min_amount)
    scored = score(data=prepared.outputs.clean, threshold=50.0, label=label)
    scored.named("scoring").configure(timeout=600, retries=1)
    return {"clean": prepared.outputs.clean, "total": scored.outputs.total}


@pipeline
def scoring(data: Annotated[str, Input(type="uri_folder")], threshold: float = 0.5):
    scored = score(data=data, threshold=threshold, strict=True)
    described = report(data=data, style="long")
    return {"passed": scored.outputs.passed, "summary": described.outputs.summary}


@pipeline(name="two_cuts", continue_on_step_failure=True)
def two_cuts(raw: Annotated[str, Input(type="uri_file")] = "data/orders.csv"):
    everything = prep(raw=raw)
    large = prep(raw=raw, min_amount=100)
    nested = scoring(data=large.outputs.clean, threshold=100.0)
    count(items=everything.outputs.output)
    return {"passed": nested.outputs.passed}


def chain(length: int) -> PipelineFunction[[]]:
    """A pipeline of ``length`` trivial steps, each waiting for the one before."""

    @pipeline(name="chain")
    def chained() -> dict[str, Any]:
        previous = count(items=1)
        for _ in range(length - 1):
            previous = count(items=1, scale=previous.outputs.output)
        return {"last": previous.outputs.output}

    return chained
