"""Follow a job: its steps' status changes and their log lines, until it ends.

Works for a job run by this process or by any other (it reads the store and the
log files the runner writes), so ``keel job stream NAME`` and ``keel job create
--stream`` are the same code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from keel.jobs.command import LOG_FILE
from keel.store.schema import jobs
from keel.tracking.entities import TERMINAL_STATUSES, Job, JobStatus
from keel.tracking.jobs import get_job, reap_dead_jobs
from keel.workspace import Workspace

Printer = Callable[[str], None]


@dataclass
class _Seen:
    status: str = ""
    log_offset: int = 0
    log_tail: bytes = field(default=b"")


def follow(
    workspace: Workspace,
    name: str,
    *,
    printer: Printer,
    finished: threading.Event | None = None,
    poll_seconds: float = 0.25,
    show_logs: bool = True,
    tick: Callable[[], object] | None = None,
) -> Job:
    """Print progress until ``name`` ends; returns the final job record.

    A paused pipeline is followed until it ends too (``finished`` only says this
    process's runner returned); ``tick`` runs at each poll, e.g. to settle approvals."""
    seen: dict[int, _Seen] = {}
    while True:
        root = get_job(workspace.store, name)
        tree = _tree(workspace, root)
        for job_id, label, status, reason, note, location in [*tree[1:], tree[0]]:
            state = seen.setdefault(job_id, _Seen())
            if show_logs:
                _print_new_log(workspace, location, label, state, printer)
            if status != state.status:
                state.status = status
                printer(_status_line(label, status, reason, note))
        if root.status in TERMINAL_STATUSES:
            return root
        waiting = finished is not None and not finished.is_set()
        done = finished.wait(poll_seconds) if finished is not None and waiting else _sleep(poll_seconds)
        if not done:
            reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
            if tick is not None:
                tick()


def _sleep(seconds: float) -> bool:
    threading.Event().wait(seconds)
    return False


def _tree(workspace: Workspace, root: Job) -> list[tuple[int, str, str, str | None, str | None, str]]:
    """(id, label, status, reason, reuse note, artifact location) for the job and every descendant."""
    found = [
        (
            root.id,
            root.step_name or root.name,
            root.status.value,
            root.status_reason,
            root.reuse_note,
            root.artifact_location,
        )
    ]
    frontier = [root.id]
    columns = (
        jobs.c.id,
        jobs.c.step_name,
        jobs.c.name,
        jobs.c.status,
        jobs.c.status_reason,
        jobs.c.reuse_note,
        jobs.c.artifact_location,
    )
    with workspace.store.read() as conn:
        while frontier:
            rows = conn.execute(
                select(*columns).where(jobs.c.parent_id.in_(frontier)).order_by(jobs.c.id)
            ).all()
            frontier = [row.id for row in rows]
            found += [
                (
                    row.id,
                    row.step_name or row.name,
                    row.status,
                    row.status_reason,
                    row.reuse_note,
                    row.artifact_location,
                )
                for row in rows
            ]
    if len(found) > 1:
        found[0] = (root.id, root.name, *found[0][2:])
    return found


def _status_line(label: str, status: str, reason: str | None, note: str | None) -> str:
    text = f"[{label}] {JobStatus(status).label}"
    if note and note.startswith("reused"):
        text += f" ({note})"
    elif reason:
        text += f": {reason}"
    return text


def _print_new_log(workspace: Workspace, location: str, label: str, state: _Seen, printer: Printer) -> None:
    if "://" in location or not workspace.artifacts.is_local:
        return
    path: Path = workspace.artifacts.local_path(f"{location}/{LOG_FILE}")
    try:
        with open(path, "rb") as log:
            log.seek(state.log_offset)
            chunk = log.read()
    except FileNotFoundError:
        return
    state.log_offset += len(chunk)
    text = state.log_tail + chunk
    *lines, state.log_tail = text.split(b"\n")
    for line in lines:
        printer(f"[{label}] {line.decode('utf-8', 'replace')}")
