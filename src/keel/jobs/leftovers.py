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

from keel.store import Store
from keel.store.schema import jobs


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
    frontier = [root_id]
    columns = (jobs.c.id, jobs.c.name, jobs.c.hostname, jobs.c.process_id)
    with store.read() as conn:
        while frontier:
            rows = conn.execute(select(*columns).where(jobs.c.parent_id.in_(frontier))).all()
            frontier = [row.id for row in rows]
            for row in rows:
                if row.hostname == host and row.process_id and belongs_to(row.process_id, row.name):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(row.process_id, signal.SIGKILL)
                        stopped.append(row.name)
    return stopped
