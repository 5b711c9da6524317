"""Keel: a self-hosted, local-first machine-learning platform.

The public SDK is what ``__all__`` lists; everything else is internal. Names are
loaded on first use so that ``import keel`` (and the ``keel`` command) stay fast.

    import keel

    with keel.start_run(experiment="flights") as run:
        keel.log_params({"model": "forest", "trees": 50})
        for epoch in range(10):
            keel.log_metric("loss", 0.9 ** epoch, step=epoch)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "start_run": "keel.tracking.sdk",
    "end_run": "keel.tracking.sdk",
    "active_run": "keel.tracking.sdk",
    "log_param": "keel.tracking.sdk",
    "log_params": "keel.tracking.sdk",
    "log_metric": "keel.tracking.sdk",
    "log_metrics": "keel.tracking.sdk",
    "set_tag": "keel.tracking.sdk",
    "set_tags": "keel.tracking.sdk",
    "log_artifact": "keel.tracking.sdk",
    "log_artifacts": "keel.tracking.sdk",
    "log_dict": "keel.tracking.sdk",
    "log_text": "keel.tracking.sdk",
    "flush": "keel.tracking.sdk",
    "get_job": "keel.tracking.sdk",
    "search_jobs": "keel.tracking.sdk",
    "get_metric_history": "keel.tracking.sdk",
    "set_workspace": "keel.tracking.sdk",
    "Run": "keel.tracking.sdk",
    "component": "keel.jobs.python_component",
    "Input": "keel.jobs.python_component",
    "Output": "keel.jobs.python_component",
    "pipeline": "keel.jobs.python_pipeline",
    "submit": "keel.jobs.immediate",
    "load_job": "keel.specs",
    "log_model": "keel.models.sdk",
    "load_model": "keel.models.sdk",
    "Job": "keel.tracking.entities",
    "JobStatus": "keel.tracking.entities",
    "MetricPoint": "keel.tracking.entities",
    "MetricSummary": "keel.tracking.entities",
    "Experiment": "keel.tracking.entities",
    "Workspace": "keel.workspace",
    "KeelError": "keel.errors",
    "InvalidInput": "keel.errors",
    "NotFound": "keel.errors",
    "Conflict": "keel.errors",
}

__all__ = [
    "Conflict",
    "Experiment",
    "Input",
    "InvalidInput",
    "Job",
    "JobStatus",
    "KeelError",
    "MetricPoint",
    "MetricSummary",
    "NotFound",
    "Output",
    "Run",
    "Workspace",
    "active_run",
    "component",
    "end_run",
    "flush",
    "get_job",
    "get_metric_history",
    "load_job",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "search_jobs",
    "set_tag",
    "set_tags",
    "set_workspace",
    "start_run",
    "submit",
]

if TYPE_CHECKING:
    from keel.errors import Conflict, InvalidInput, KeelError, NotFound
    from keel.jobs.immediate import submit
    from keel.jobs.python_component import Input, Output, component
    from keel.jobs.python_pipeline import pipeline
    from keel.models.sdk import load_model, log_model
    from keel.specs import load_job
    from keel.tracking.entities import Experiment, Job, JobStatus, MetricPoint, MetricSummary
    from keel.tracking.sdk import (
        Run,
        active_run,
        end_run,
        flush,
        get_job,
        get_metric_history,
        log_artifact,
        log_artifacts,
        log_dict,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        search_jobs,
        set_tag,
        set_tags,
        set_workspace,
        start_run,
    )
    from keel.workspace import Workspace


def __getattr__(name: str) -> Any:
    if name == "data":  # the data SDK, as a namespace: keel.data.load(...), keel.data.create_asset(...)
        return importlib.import_module("keel.data")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
