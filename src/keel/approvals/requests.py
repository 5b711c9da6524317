"""Approval requests and the decisions people make on them.

A request is opened by the runner when a pipeline reaches a ``type: approval``
step. People approve or reject it (``keel approval approve/reject``); each decision
is a row with who, the OS user who typed it, when and the comment. A reject decides
at once; approvals decide when ``min_approvals`` different people have approved.
A request whose timeout passes is decided by its ``on_timeout`` by whoever looks
first. Every change of status is made under a lock on the request's row, so a
decision and a runner parking its pipeline never miss each other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.store import Store
from keel.store.schema import approval_decisions, approvals, jobs
from keel.tracking.entities import JobStatus

if TYPE_CHECKING:  # webhooks (and pydantic) load only when an event is written
    from keel.webhooks.config import WebhookSettings

PENDING, APPROVED, REJECTED, CANCELED = "pending", "approved", "rejected", "canceled"
STATUSES = (PENDING, APPROVED, REJECTED, CANCELED)
_steps = jobs.alias("step_job")
_roots = jobs.alias("root_job")


@dataclass(frozen=True)
class Decision:
    decision: str  # approve | reject
    decided_by: str
    os_user: str | None
    comment: str | None
    decided_at: int


@dataclass(frozen=True)
class Approval:
    """One approval step of one pipeline run, and what has been decided on it."""

    id: int
    job_name: str  # the approval step's own job
    pipeline: str  # the pipeline (root job) that waits
    step_name: str
    approvers: tuple[str, ...]
    min_approvals: int
    instructions: str | None
    on_timeout: str
    status: str
    status_reason: str | None
    created_at: int
    expires_at: int | None
    decided_at: int | None
    decisions: tuple[Decision, ...] = field(default=())

    @property
    def approved_by(self) -> list[str]:
        return [d.decided_by for d in self.decisions if d.decision == "approve"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "step": self.step_name,
            "job": self.job_name,
            "status": self.status,
            "status_reason": self.status_reason,
            "approvers": list(self.approvers),
            "min_approvals": self.min_approvals,
            "approvals": len(self.approved_by),
            "instructions": self.instructions,
            "on_timeout": self.on_timeout,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "decisions": [vars(d) for d in self.decisions],
        }


def get_approval(store: Store, approval_id: int) -> Approval:
    found = list_approvals(store, ids=[approval_id], status=None)
    if not found:
        raise NotFound(f"no approval {approval_id}", hint="see `keel approval list`")
    return found[0]


def list_approvals(
    store: Store,
    *,
    status: str | None = PENDING,
    pipeline: str | None = None,
    ids: Sequence[int] | None = None,
    limit: int = 200,
) -> list[Approval]:
    """Approvals, newest first; by default the pending ones."""
    query = (
        select(approvals, _steps.c.name.label("job_name"), _roots.c.name.label("pipeline"))
        .join(_steps, _steps.c.id == approvals.c.job_id)
        .join(_roots, _roots.c.id == approvals.c.root_job_id)
        .order_by(approvals.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(approvals.c.status == status)
    if pipeline is not None:
        query = query.where(_roots.c.name == pipeline)
    if ids is not None:
        query = query.where(approvals.c.id.in_(list(ids)))
    with store.read() as conn:
        rows = conn.execute(query).all()
        decisions = _decisions(conn, [row.id for row in rows])
    return [_approval(row, decisions.get(row.id, ())) for row in rows]


def _decisions(conn: Connection, ids: list[int]) -> dict[int, tuple[Decision, ...]]:
    if not ids:
        return {}
    found: dict[int, list[Decision]] = {}
    query = (
        select(approval_decisions)
        .where(approval_decisions.c.approval_id.in_(ids))
        .order_by(approval_decisions.c.id)
    )
    for row in conn.execute(query):
        found.setdefault(row.approval_id, []).append(
            Decision(row.decision, row.decided_by, row.os_user, row.comment, row.decided_at)
        )
    return {key: tuple(value) for key, value in found.items()}


def _approval(row: Any, decisions: tuple[Decision, ...]) -> Approval:
    return Approval(
        id=row.id,
        job_name=row.job_name,
        pipeline=row.pipeline,
        step_name=row.step_name,
        approvers=tuple(json.loads(row.approvers)),
        min_approvals=row.min_approvals,
        instructions=row.instructions,
        on_timeout=row.on_timeout,
        status=row.status,
        status_reason=row.status_reason,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decisions=decisions,
    )


def decide(
    store: Store,
    settings: WebhookSettings,
    approval_id: int,
    decision: str,
    *,
    by: str,
    os_user: str | None,
    comment: str | None,
) -> Approval:
    """Record one person's decision; returns the approval as it now stands."""
    if decision not in ("approve", "reject"):
        raise InvalidInput(f"a decision is approve or reject, not {decision!r}")
    comment = (comment or "").strip() or None
    if decision == "reject" and comment is None:
        raise InvalidInput("a rejection needs a comment saying why", hint="pass --comment")
    by = by.strip()
    if not by:
        raise InvalidInput("who decides cannot be empty")
    now = now_ms()
    try:
        with store.write() as conn:
            row = _locked(conn, approval_id)
            _check_can_decide(row, by, now)
            conn.execute(
                insert(approval_decisions).values(
                    approval_id=approval_id,
                    decision=decision,
                    decided_by=by,
                    os_user=os_user,
                    comment=comment,
                    decided_at=now,
                )
            )
            approved = _approvals_count(conn, approval_id)
            if decision == "reject":
                _close(conn, settings, row, REJECTED, f"rejected by {by}: {comment}", now=now)
            elif approved >= row.min_approvals:
                _close(
                    conn, settings, row, APPROVED, f"approved by {_approvers_of(conn, approval_id)}", now=now
                )
    except IntegrityError:
        raise Conflict(f"{by} has already decided on approval {approval_id}") from None
    return get_approval(store, approval_id)


def _locked(conn: Connection, approval_id: int) -> Any:
    row = conn.execute(select(approvals).where(approvals.c.id == approval_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no approval {approval_id}", hint="see `keel approval list`")
    return row


def _check_can_decide(row: Any, by: str, now: int) -> None:
    if row.status != PENDING:
        raise Conflict(f"approval {row.id} is already {row.status}", hint=row.status_reason)
    if row.expires_at is not None and row.expires_at <= now:
        raise Conflict(
            f"approval {row.id} timed out; it is decided by its on_timeout ({row.on_timeout})",
            hint="see `keel approval show`",
        )
    approvers = json.loads(row.approvers)
    if approvers and by not in approvers:
        raise PermissionDenied(
            f"{by} is not an approver of approval {row.id}", hint=f"approvers: {', '.join(approvers)}"
        )


def _approvals_count(conn: Connection, approval_id: int) -> int:
    return len(_approver_names(conn, approval_id))


def _approver_names(conn: Connection, approval_id: int) -> list[str]:
    query = select(approval_decisions.c.decided_by).where(
        approval_decisions.c.approval_id == approval_id, approval_decisions.c.decision == "approve"
    )
    return list(conn.execute(query.order_by(approval_decisions.c.id)).scalars())


def _approvers_of(conn: Connection, approval_id: int) -> str:
    return ", ".join(_approver_names(conn, approval_id))


def _close(
    conn: Connection, settings: WebhookSettings, row: Any, status: str, reason: str, *, now: int
) -> None:
    """Decide the request (the caller holds its row lock) and announce it."""
    conn.execute(
        update(approvals)
        .where(approvals.c.id == row.id)
        .values(status=status, status_reason=reason, decided_at=now)
    )
    if status != CANCELED:
        names = conn.execute(
            select(_roots.c.name, _steps.c.name)
            .select_from(_roots.join(_steps, _steps.c.id == row.job_id))
            .where(_roots.c.id == row.root_job_id)
        ).one()
        data = {
            "approval": {
                "id": row.id,
                "pipeline": names[0],
                "job": names[1],
                "step": row.step_name,
                "status": status,
                "status_reason": reason,
            }
        }
        from keel.webhooks.outbox import enqueue

        enqueue(conn, settings, "approval.decided", data)


def expire_due(store: Store, settings: WebhookSettings, *, now: int | None = None) -> list[int]:
    """Decide every pending request whose timeout has passed by its ``on_timeout``."""
    current = now if now is not None else now_ms()
    with store.read() as conn:
        due = conn.execute(
            select(approvals.c.id).where(
                approvals.c.status == PENDING,
                and_(approvals.c.expires_at.is_not(None), approvals.c.expires_at <= current),
            )
        ).scalars()
        candidates = list(due)
    decided = []
    for approval_id in candidates:
        with store.write() as conn:
            row = _locked(conn, approval_id)
            if row.status != PENDING:
                continue  # someone else looked first
            status = APPROVED if row.on_timeout == "approve" else REJECTED
            waited = _duration((row.expires_at - row.created_at) / 1000)
            reason = f"approval timed out after {waited} (on_timeout: {row.on_timeout})"
            _close(conn, settings, row, status, reason, now=current)
            decided.append(approval_id)
    return decided


def cancel_pending(conn: Connection, settings: WebhookSettings, root_job_id: int, reason: str) -> None:
    """Close the pipeline's pending requests: it stopped, so nobody needs to decide."""
    rows = conn.execute(
        select(approvals)
        .where(approvals.c.root_job_id == root_job_id, approvals.c.status == PENDING)
        .with_for_update()
    ).all()
    for row in rows:
        _close(conn, settings, row, CANCELED, reason, now=now_ms())


def open_request(
    store: Store,
    settings: WebhookSettings,
    *,
    job_id: int,
    root_job_id: int,
    step_name: str,
    plan: Any,
) -> int:
    """The request for the approval step ``job_id``, opened now unless it already was
    (a resumed pipeline reaches the same step again); the step shows as paused while pending."""
    now = now_ms()
    with store.write() as conn:
        row = conn.execute(
            select(approvals.c.id, approvals.c.status).where(approvals.c.job_id == job_id)
        ).first()
        if row is None:
            approval_id = _insert(
                conn, job_id=job_id, root_job_id=root_job_id, step_name=step_name, plan=plan, now=now
            )
            _announce(conn, settings, approval_id, plan)
        else:
            approval_id = row.id
        if row is None or row.status == PENDING:
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
                )
                .values(
                    status=JobStatus.PAUSED.value,
                    start_time=now if row is None else jobs.c.start_time,
                    status_reason=f"waiting for approval {approval_id}",
                )
            )
    return approval_id


def _insert(conn: Connection, *, job_id: int, root_job_id: int, step_name: str, plan: Any, now: int) -> int:
    values = {
        "job_id": job_id,
        "root_job_id": root_job_id,
        "step_name": step_name,
        "approvers": json.dumps(list(plan.approvers)),
        "min_approvals": plan.min_approvals,
        "instructions": plan.instructions,
        "on_timeout": plan.on_timeout,
        "status": PENDING,
        "created_at": now,
        "expires_at": now + int(plan.timeout * 1000) if plan.timeout else None,
    }
    return int(conn.execute(insert(approvals).values(**values).returning(approvals.c.id)).scalar_one())


def _announce(conn: Connection, settings: WebhookSettings, approval_id: int, plan: Any) -> None:
    row = conn.execute(
        select(approvals, _steps.c.name.label("job_name"), _roots.c.name.label("pipeline"))
        .join(_steps, _steps.c.id == approvals.c.job_id)
        .join(_roots, _roots.c.id == approvals.c.root_job_id)
        .where(approvals.c.id == approval_id)
    ).one()
    data = _approval(row, ()).to_dict()
    data.pop("decisions")
    commands = {
        "approve": f"keel approval approve {approval_id} --comment '…'",
        "reject": f"keel approval reject {approval_id} --comment '…'",
    }
    from keel.webhooks.outbox import enqueue

    enqueue(conn, settings, "approval.requested", {"approval": data, "commands": commands})


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
