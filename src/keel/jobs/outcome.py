"""How a finished job maps to the exit code of the command that waited for it."""

from __future__ import annotations

from keel.tracking.entities import Job, JobStatus

COMPLETED, FAILED, CANCELED, TIMED_OUT = 0, 1, 2, 3


def exit_code_for(job: Job) -> int:
    """0 completed, 1 failed, 2 canceled, 3 timed out (Keel's contract with CI systems)."""
    if job.status == JobStatus.COMPLETED:
        return COMPLETED
    if job.status == JobStatus.CANCELED:
        return CANCELED
    if job.status_reason and "timed out after" in job.status_reason:
        return TIMED_OUT
    return FAILED
