"""Processes a dead runner left behind, found by identity and stopped.

Each command step runs in its own process group, and its environment names its
job (``KEEL_JOB_NAME``). When a runner is killed, those groups can outlive it; a
rerun or a cancel stops them, but only after reading ``/proc/<pid>/environ`` to
be sure the pid still belongs to that job (pids are reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

from sqlalchemy import select

from keel.jobs.records import PROCESS_TAG
from keel.store import Store
from keel.store.schema import job_tags, jobs


def belongs_to(pid: int, job_name: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"KEEL_JOB_NAME={job_name}".encode() in environ.split(b"\0")


def stop_leftovers(store: Store, root_id: int) -> list[str]:
    """Kill the process groups still running for steps of ``root_id`` on this host."""
    host = socket.gethostname()
    stopped: list[str] = []
    for job_name, where in _step_processes(store, root_id):
        owner, _, pid_text = where.rpartition(":")
        if owner != host or not pid_text.isdigit() or not belongs_to(int(pid_text), job_name):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid_text), signal.SIGKILL)
            stopped.append(job_name)
    return stopped


def _step_processes(store: Store, root_id: int) -> list[tuple[str, str]]:
    """(job name, ``host:pid``) of every step under ``root_id`` that recorded its process."""
    found: list[tuple[str, str]] = []
    frontier = [root_id]
    with store.read() as conn:
        while frontier:
            rows = conn.execute(select(jobs.c.id, jobs.c.name).where(jobs.c.parent_id.in_(frontier))).all()
            frontier = [row.id for row in rows]
            if not frontier:
                break
            tagged = conn.execute(
                select(jobs.c.name, job_tags.c.value)
                .join(job_tags, job_tags.c.job_id == jobs.c.id)
                .where(jobs.c.id.in_(frontier), job_tags.c.key == PROCESS_TAG)
            ).all()
            found += [(row.name, row.value) for row in tagged]
    return found
