"""Where a model version comes from: the job that produced it, what that job read, and so back.

The chain is the data package's lineage of the producing job: each data input of the
job (a data asset version, another job's output, a path), and, for inputs a job
produced, that job's inputs in turn.
"""

from __future__ import annotations

from keel.data.lineage import MAX_DEPTH, Hop, job_lineage
from keel.models.registry import ModelVersion
from keel.workspace import Workspace


def model_lineage(workspace: Workspace, version: ModelVersion, *, max_depth: int = MAX_DEPTH) -> list[Hop]:
    """The data inputs of the job that produced ``version`` and of the jobs behind them."""
    if version.job_name is None:
        return []
    return job_lineage(workspace, version.job_name, max_depth=max_depth)
