"""Resuming paused pipelines: after a decision, and for whoever looks.

A decision on a paused pipeline starts a detached runner that claims the pipeline
(``paused`` → ``running``, one claimer wins) and runs what remains, keeping every
step that already finished. Timeouts need no process of their own: ``settle`` is
called by whoever looks (``keel approval list``, ``keel job show``, a waiting
``keel job create --wait``, ``keel server``'s housekeeping, the scheduler's tick); it
decides expired requests and starts a runner for each paused pipeline that has a
decision waiting to be applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, or_, select, update

from keel.approvals.requests import APPROVED, PENDING, REJECTED, cancel_pending, expire_due
from keel.clock import now_ms
from keel.store.schema import approvals, jobs
from keel.tracking.entities import TERMINAL_STATUSES, JobStatus
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.webhooks.config import WebhookSettings

# A runner started to resume is given this long to claim the pipeline before a looker
# starts another (the second one finds it claimed and exits).
RESUME_GRACE_MS = 30_000
_steps = jobs.alias("step_job")
_roots = jobs.alias("root_job")


def settle(workspace: Workspace, *, now: int | None = None) -> list[str]:
    """Decide timed-out requests; resume paused pipelines with a decision to apply.
    Returns the names of the pipelines a runner was started for."""
    current = now if now is not None else now_ms()
    with workspace.store.read() as conn:  # the usual answer, cheaply: nothing to do
        if conn.execute(_NEEDS_A_LOOK, {"now": current}).first() is None:
            return []
    from keel.webhooks.endpoints import settings_of

    settings = settings_of(workspace)
    _close_orphans(workspace, settings)
    expire_due(workspace.store, settings, now=current)
    query = (
        select(approvals.c.id, _roots.c.name)
        .join(_steps, _steps.c.id == approvals.c.job_id)
        .join(_roots, _roots.c.id == approvals.c.root_job_id)
        .where(
            approvals.c.status.in_([APPROVED, REJECTED]),
            _steps.c.status == JobStatus.PAUSED.value,
            _roots.c.status == JobStatus.PAUSED.value,
            or_(
                approvals.c.resume_requested_at.is_(None),
                approvals.c.resume_requested_at < current - RESUME_GRACE_MS,
            ),
        )
    )
    with workspace.store.read() as conn:
        waiting = conn.execute(query).all()
    started = []
    for approval_id, pipeline in waiting:
        if pipeline not in started and request_resume(workspace, approval_id, pipeline):
            started.append(pipeline)
    return started


_ENDED = [status.value for status in TERMINAL_STATUSES]
_NEEDS_A_LOOK = (
    select(approvals.c.id)
    .join(_steps, _steps.c.id == approvals.c.job_id)
    .join(_roots, _roots.c.id == approvals.c.root_job_id)
    .where(
        or_(
            and_(approvals.c.status == PENDING, approvals.c.expires_at <= bindparam("now")),
            and_(approvals.c.status == PENDING, _roots.c.status.in_(_ENDED)),
            and_(
                approvals.c.status.in_([APPROVED, REJECTED]),
                _steps.c.status == JobStatus.PAUSED.value,
                _roots.c.status == JobStatus.PAUSED.value,
            ),
        )
    )
    .limit(1)
)


def _close_orphans(workspace: Workspace, settings: WebhookSettings) -> None:
    """Pending requests of pipelines that ended anyway (their runner died): nobody needs to decide."""
    ended = [status.value for status in TERMINAL_STATUSES]
    query = (
        select(_roots.c.id, _roots.c.status)
        .join(approvals, approvals.c.root_job_id == _roots.c.id)
        .where(approvals.c.status == PENDING, _roots.c.status.in_(ended))
        .distinct()
    )
    with workspace.store.read() as conn:
        orphans = conn.execute(query).all()
    for root_id, status in orphans:
        with workspace.store.write() as conn:
            cancel_pending(conn, settings, root_id, f"the pipeline ended ({status}) without a decision")


def request_resume(workspace: Workspace, approval_id: int, pipeline: str) -> bool:
    """Start a runner for ``pipeline`` if it is paused (a live runner sees decisions itself)."""
    from keel.jobs.submit import start_in_background

    with workspace.store.write() as conn:
        paused = conn.execute(
            select(jobs.c.id).where(jobs.c.name == pipeline, jobs.c.status == JobStatus.PAUSED.value)
        ).first()
        if paused is None:
            return False
        conn.execute(
            update(approvals).where(approvals.c.id == approval_id).values(resume_requested_at=now_ms())
        )
    start_in_background(workspace, pipeline, resume=True)
    return True


def cancel_paused(workspace: Workspace, root_job_id: int, reason: str) -> bool:
    """Cancel a paused pipeline directly (no runner holds it); False if it was not paused."""
    from keel.tracking.jobs import get_job_by_id
    from keel.webhooks.endpoints import settings_of
    from keel.webhooks.events import job_payload
    from keel.webhooks.outbox import emit

    settings = settings_of(workspace)
    now = now_ms()
    unfinished = [status.value for status in JobStatus if status not in TERMINAL_STATUSES]
    with workspace.store.write() as conn:
        claimed = conn.execute(
            update(jobs)
            .where(jobs.c.id == root_job_id, jobs.c.status == JobStatus.PAUSED.value)
            .values(status=JobStatus.CANCELED.value, status_reason=reason, end_time=now, heartbeat_at=None)
        ).rowcount
        if not claimed:
            return False
        frontier = [root_job_id]
        while frontier:
            frontier = list(conn.execute(select(jobs.c.id).where(jobs.c.parent_id.in_(frontier))).scalars())
            conn.execute(
                update(jobs)
                .where(and_(jobs.c.id.in_(frontier), jobs.c.status.in_(unfinished)))
                .values(status=JobStatus.CANCELED.value, status_reason=reason, end_time=now)
            )
        cancel_pending(conn, settings, root_job_id, reason)
    emit(workspace, "job.canceled", job_payload(get_job_by_id(workspace.store, root_job_id)))
    return True
