"""A ``type: transform`` step: SQL over the inputs with DuckDB (being written)."""

from __future__ import annotations

from typing import Any

from keel.jobs.command import StepResult
from keel.jobs.graph import Node
from keel.tracking.entities import JobStatus


def run_transform_step(runner: Any, node: Node) -> StepResult:
    return StepResult(JobStatus.FAILED, reason="transform steps are not connected to DuckDB yet")
