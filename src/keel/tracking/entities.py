"""What tracking reads and writes: experiments, jobs and their metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """A job's life: queued → preparing → running → completed | failed | canceled."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    CANCEL_REQUESTED = "cancel_requested"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def label(self) -> str:
        """How Azure ML shows it: ``Completed``, ``CancelRequested``."""
        return "".join(part.capitalize() for part in self.value.split("_"))


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
LIVE_STATUSES = frozenset({JobStatus.PREPARING, JobStatus.RUNNING, JobStatus.CANCEL_REQUESTED})


class LifecycleStage(StrEnum):
    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True)
class Experiment:
    """A named group of jobs."""

    id: int
    name: str
    artifact_location: str | None
    lifecycle_stage: LifecycleStage
    created_at: int
    updated_at: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of one metric key."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class MetricSummary:
    """Last, min, max and count of a metric key on one job, kept current on write."""

    key: str
    count: int
    last: float
    last_step: int
    last_timestamp: int
    min: float
    min_step: int | None
    max: float
    max_step: int | None
    first_step: int


@dataclass(frozen=True)
class JobInput:
    """Something a job read: a dataset logged through MLflow, or a job input."""

    name: str
    type: str
    uri: str | None = None
    digest: str | None = None
    source_type: str | None = None
    schema: str | None = None
    profile: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    value: str | None = None  # a literal input's value, as JSON


@dataclass(frozen=True)
class Job:
    """The one record for everything that runs, including an interactive tracking run."""

    id: int
    name: str
    display_name: str | None
    experiment_id: int
    experiment_name: str
    parent_name: str | None
    type: str
    status: JobStatus
    status_reason: str | None
    description: str | None
    user_id: str | None
    created_at: int
    start_time: int | None
    end_time: int | None
    heartbeat_at: int | None
    lifecycle_stage: LifecycleStage
    artifact_location: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    inputs: list[JobInput] = field(default_factory=list)
    step_name: str | None = None
    reused_from: str | None = None
    reuse_note: str | None = None
    exit_code: int | None = None
    environment: str | None = None
    compute: str | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (NaN and infinities as strings, as JSON has neither)."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "experiment": self.experiment_name,
            "parent": self.parent_name,
            "type": self.type,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "description": self.description,
            "user": self.user_id,
            "created_at": self.created_at,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "artifact_location": self.artifact_location,
            "params": dict(self.params),
            "tags": dict(self.tags),
            "metrics": {
                key: {
                    "last": json_number(s.last),
                    "min": json_number(s.min),
                    "max": json_number(s.max),
                    "count": s.count,
                    "last_step": s.last_step,
                }
                for key, s in self.metrics.items()
            },
        }


def json_number(value: float) -> float | str:
    """JSON cannot carry NaN or infinities; spell them as MLflow's API does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
