"""What webhook events say about jobs (approvals describe themselves in keel.approvals)."""

from __future__ import annotations

from typing import Any

from keel.tracking.entities import Job, JobStatus

JOB_EVENTS = {
    JobStatus.RUNNING: "job.running",
    JobStatus.PAUSED: "job.paused",
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}


def job_payload(job: Job) -> dict[str, Any]:
    """The ``data`` of a job event: enough to act on without calling back."""
    from keel.jobs.outcome import exit_code_for

    return {
        "job": {
            "name": job.name,
            "display_name": job.display_name,
            "experiment": job.experiment_name,
            "type": job.type,
            "status": job.status.value,
            "status_reason": job.status_reason,
            "created_at": job.created_at,
            "start_time": job.start_time,
            "end_time": job.end_time,
            "exit_code": exit_code_for(job) if job.status.is_terminal else None,
        }
    }
