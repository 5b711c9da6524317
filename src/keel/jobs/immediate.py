"""``keel.submit``: run a job built in Python (or loaded from YAML) from Python.

By default the job runs right here, in this process, and ``submit`` returns the
finished job: Python components defined in this process are called in-process
(the fast path), command steps run as processes. ``wait=False`` hands the job to
a background runner instead, like ``keel job create`` without ``--wait``.
"""

from __future__ import annotations

import os
import sys
import threading

from keel.specs.resolved import ResolvedJob
from keel.tracking.entities import Job
from keel.workspace import Workspace


def submit(
    job: ResolvedJob,
    *,
    experiment_name: str | None = None,
    name: str | None = None,
    display_name: str | None = None,
    wait: bool = True,
    stream: bool = False,
    workspace: str | os.PathLike[str] | None = None,
) -> Job:
    """Record ``job`` and run it; returns the job (finished, unless ``wait=False``)."""
    from keel.jobs import submit as submission
    from keel.tracking.jobs import get_job
    from keel.tracking.sdk import current_workspace

    target = Workspace.open(workspace) if workspace is not None else current_workspace()
    recorded = submission.submit(
        target, job, name=name, experiment_name=experiment_name, display_name=display_name
    )
    if not wait:
        submission.start_in_background(target, recorded.name)
        return recorded
    if stream:
        _run_streaming(target, recorded.name)
    else:
        submission.run(target, recorded.name)
    return get_job(target.store, recorded.name)


def _run_streaming(workspace: Workspace, name: str) -> None:
    from keel.jobs.stream import follow
    from keel.jobs.submit import run

    finished = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run(workspace, name)
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="keel-runner", daemon=True)
    thread.start()
    follow(workspace, name, printer=lambda line: print(line, file=sys.stdout), finished=finished)
    thread.join()
    if failure:
        raise failure[0]
