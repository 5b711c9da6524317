"""Approval gates: a pipeline step that waits, holding no process, until people decide.

``type: approval`` steps open a request (:mod:`keel.approvals.requests`) when the
pipeline reaches them; the runner parks the pipeline in ``paused`` and exits
(:mod:`keel.approvals.gate`); a decision, or a timeout noticed by whoever looks,
starts a runner that resumes it (:mod:`keel.approvals.resume`).
"""

from __future__ import annotations

import getpass

from keel.approvals.requests import (
    APPROVED,
    CANCELED,
    PENDING,
    REJECTED,
    Approval,
    Decision,
    get_approval,
    list_approvals,
)
from keel.approvals.resume import cancel_paused, request_resume, settle
from keel.workspace import Workspace

__all__ = [
    "APPROVED",
    "CANCELED",
    "PENDING",
    "REJECTED",
    "Approval",
    "Decision",
    "approve",
    "cancel_paused",
    "get_approval",
    "list_approvals",
    "reject",
    "settle",
]


def approve(
    workspace: Workspace, approval_id: int, *, by: str | None = None, comment: str | None = None
) -> Approval:
    """Approve as ``by`` (default: the OS user); resumes the pipeline once enough have approved."""
    return _decide(workspace, approval_id, "approve", by=by, comment=comment)


def reject(workspace: Workspace, approval_id: int, *, comment: str, by: str | None = None) -> Approval:
    """Reject as ``by``, saying why; the pipeline fails at this step."""
    return _decide(workspace, approval_id, "reject", by=by, comment=comment)


def _decide(
    workspace: Workspace, approval_id: int, decision: str, *, by: str | None, comment: str | None
) -> Approval:
    from keel.approvals.requests import decide
    from keel.webhooks.endpoints import settings_of

    user = os_user()
    approval = decide(
        workspace.store,
        settings_of(workspace),
        approval_id,
        decision,
        by=by if by is not None else (user or "unknown"),
        os_user=user,
        comment=comment,
    )
    if approval.status != PENDING:
        request_resume(workspace, approval.id, approval.pipeline)
    return approval


def os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
