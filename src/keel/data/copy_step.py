"""A ``type: data_transfer`` (copy_data) step, run by the copy engine (being written)."""

from __future__ import annotations

from typing import Any

from keel.jobs.command import StepResult
from keel.jobs.graph import Node
from keel.tracking.entities import JobStatus


def run_copy_step(runner: Any, node: Node) -> StepResult:
    return StepResult(JobStatus.FAILED, reason="copy_data steps are not connected to the copy engine yet")
