"""The runner's side of approval steps: open requests, read decisions, park the pipeline.

When nothing but approval steps is left to wait for, the runner records the
pipeline as ``paused`` and exits; no process waits. The pause is written under a
lock on the pending requests, after checking none was decided meanwhile, so either
the runner sees the decision (and carries on) or the decision sees the pause (and
starts a runner to resume; see :mod:`keel.approvals.resume`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update

from keel.approvals.requests import PENDING, cancel_pending, expire_due, list_approvals, open_request
from keel.clock import now_ms
from keel.jobs.graph import Node, Value, binding_source
from keel.store.schema import approvals, jobs
from keel.tracking.entities import JobStatus
from keel.webhooks.endpoints import settings_of
from keel.workspace import Workspace


class Gates:
    """The approval steps one run of a pipeline is waiting on."""

    def __init__(self, workspace: Workspace, root: Node) -> None:
        self.store = workspace.store
        self.settings = settings_of(workspace)
        self.root = root
        self.waiting: dict[str, int] = {}  # node path -> approval id

    def open(self, node: Node) -> None:
        plan = node.step.approval
        if plan is None:
            raise ValueError(f"approval step {node.path} has no approval plan")
        self.waiting[node.path] = open_request(
            self.store,
            self.settings,
            job_id=node.job_id,
            root_job_id=self.root.job_id,
            step_name=node.path,
            plan=plan,
        )

    def decided(self) -> list[tuple[str, str, str | None]]:
        """``(path, status, reason)`` of each waited-on request decided since the last look
        (deciding the ones whose timeout passed)."""
        if not self.waiting:
            return []
        expire_due(self.store, self.settings)
        found = {a.id: a for a in list_approvals(self.store, status=None, ids=list(self.waiting.values()))}
        done = []
        for path, approval_id in list(self.waiting.items()):
            approval = found.get(approval_id)
            if approval is not None and approval.status != PENDING:
                del self.waiting[path]
                done.append((path, approval.status, approval.status_reason))
        return done

    def cancel_all(self, reason: str) -> list[str]:
        """Close every pending request (the pipeline stops); returns the paths that waited."""
        if not self.waiting:
            return []
        with self.store.write() as conn:
            cancel_pending(conn, self.settings, self.root.job_id, reason)
        paths, self.waiting = list(self.waiting), {}
        return paths

    def pause(self, pipelines: Sequence[Node]) -> str | None:
        """Record the pipeline as paused, unless a request was decided (or timed out) or the
        pipeline was asked to stop meanwhile; returns the reason shown, or None if not paused."""
        now = now_ms()
        with self.store.write() as conn:
            rows = conn.execute(
                select(approvals.c.id, approvals.c.status, approvals.c.expires_at, approvals.c.step_name)
                .where(approvals.c.id.in_(list(self.waiting.values())))
                .order_by(approvals.c.id)
                .with_for_update()
            ).all()
            root_status = conn.execute(
                select(jobs.c.status).where(jobs.c.id == self.root.job_id)
            ).scalar_one()
            if (
                not rows
                or root_status != JobStatus.RUNNING.value
                or any(
                    row.status != PENDING or (row.expires_at is not None and row.expires_at <= now)
                    for row in rows
                )
            ):
                return None
            waits = "; ".join(f"approval {row.id} (step {row.step_name!r})" for row in rows)
            reason = f"waiting for {waits}: keel approval approve {rows[0].id} --comment '…'"
            conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_([node.job_id for node in pipelines]),
                    jobs.c.status == JobStatus.RUNNING.value,
                )
                .values(status=JobStatus.PAUSED.value, heartbeat_at=None, status_reason=reason)
            )
        return reason


def passed_on(node: Node, nodes: dict[str, Node]) -> dict[str, Value]:
    """An approved step's outputs: its inputs, unchanged. A step output keeps the location
    its producer committed it to, so later steps and downloads find it where it is."""
    outputs: dict[str, Value] = {}
    for name, value in node.inputs.items():
        if value is None:
            continue
        binding = node.step.inputs.get(name)
        produced = binding_source(node, binding, nodes) if binding and binding.kind == "step_output" else None
        outputs[name] = produced or value
    return outputs
