"""The tracking SDK: ``keel.start_run`` and friends, on the workspace this process uses.

Runs nest per thread: a run started while another is active becomes its child
job. Logging without an active run starts one, as MLflow does. A run whose
``with`` block raises ends as failed (canceled on Ctrl-C); at interpreter exit,
runs still open end as completed, or failed if the program died of an exception.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from keel.clock import now_ms
from keel.errors import InvalidInput, KeelError, NotFound
from keel.tracking import experiments as experiment_ops
from keel.tracking import jobs as job_ops
from keel.tracking.entities import Job, JobStatus, MetricPoint
from keel.tracking.metrics import get_metric_history as _history
from keel.tracking.search import search_jobs as _search
from keel.tracking.validation import (
    check_key,
    check_metric_value,
    check_step,
    check_timestamp,
)
from keel.tracking.writer import MetricWriter, close_all_writers
from keel.workspace import Workspace

_session_lock = threading.Lock()
_session: _Session | None = None
_stacks = threading.local()
_died_of_exception = False
_open_runs: dict[int, Run] = {}  # every thread's open runs, for the exit handler


class _Session:
    """The workspace this process logs into, with its background writer."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.writer = MetricWriter(self.store)

    def close(self) -> None:
        self.writer.close()


def set_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Use the workspace at ``path`` (resolved as the CLI does) for this process."""
    global _session
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = _Session(Workspace.open(path))
        return _session.workspace


def current_workspace() -> Workspace:
    """The workspace this process logs into (see :func:`set_workspace`)."""
    return _current_session().workspace


def _current_session() -> _Session:
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = _Session(Workspace.open())
    return _session


def _stack() -> list[Run]:
    stack: list[Run] | None = getattr(_stacks, "runs", None)
    if stack is None:
        stack = []
        _stacks.runs = stack
    return stack


class Run:
    """An active job this process logs into; use it as a context manager."""

    def __init__(self, session: _Session, job: Job, *, owns_status: bool = True) -> None:
        self._session = session
        self._put = session.writer.put
        self.job_id = job.id
        self.name = job.name
        self.experiment_id = job.experiment_id
        self.artifact_location = job.artifact_location
        self._owns_status = owns_status
        self._next_step: dict[str, int] = {}
        self._checked_keys: set[str] = set()
        self._ended = False
        self.logged_metrics = False

    @classmethod
    def for_job(
        cls, session: _Session, *, job_id: int, name: str, experiment_id: int, artifact_location: str
    ) -> Run:
        """A handle on a job someone else runs (and ends)."""
        run = cls.__new__(cls)
        run._session, run._put = session, session.writer.put
        run.job_id, run.name, run.experiment_id = job_id, name, experiment_id
        run.artifact_location, run._owns_status = artifact_location, False
        run._next_step, run._checked_keys, run._ended, run.logged_metrics = {}, set(), False, False
        return run

    def __repr__(self) -> str:
        return f"<keel.Run {self.name}>"

    # -- logging --------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        job_ops.log_params(self._session.store, self.job_id, params)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        job_ops.set_tags(self._session.store, self.job_id, tags)

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
        """Queue one point; ``step`` defaults to one past this key's previous step."""
        if type(value) is not float:
            value = check_metric_value(key, value)
        if key not in self._checked_keys:
            check_key(key, "metric")
            self._checked_keys.add(key)
        if step is None:
            step = self._next_step.get(key, 0)
        elif type(step) is not int or step < 0:
            step = check_step(key, step)
        self._next_step[key] = step + 1
        stamp = now_ms() if timestamp is None else check_timestamp(key, timestamp)
        self._put((self.job_id, key, value, stamp, step))
        self.logged_metrics = True

    def log_metrics(
        self, values: Mapping[str, Any], step: int | None = None, timestamp: int | None = None
    ) -> None:
        if not isinstance(values, Mapping):
            raise InvalidInput(f"metrics must be a mapping of key to number, got {values!r:.60}")
        stamp = now_ms() if timestamp is None else timestamp
        for key, value in values.items():
            self.log_metric(key, value, step, stamp)

    # -- artifacts ------------------------------------------------------------------

    def _artifacts(self) -> tuple[Any, str]:
        """The store and prefix this job's artifacts live under."""
        location = self.artifact_location
        if "://" in location:
            from keel.artifacts import ArtifactStore

            return ArtifactStore(location), ""
        return self._session.workspace.artifacts, location

    def _target(self, *parts: str | None) -> tuple[Any, str]:
        store, prefix = self._artifacts()
        from keel.artifacts import safe_relative_path

        clean = [safe_relative_path(p) for p in parts if p]
        return store, "/".join([prefix, *clean]) if prefix else "/".join(clean)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy one file into the job's artifacts, under ``artifact_path`` if given."""
        source = Path(local_path)
        if not source.is_file():
            raise NotFound(f"cannot log artifact: no file at {source}")
        store, target = self._target(artifact_path, source.name)
        store.put_file(source, target)

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a folder's contents into the job's artifacts."""
        source = Path(local_dir)
        if not source.is_dir():
            raise NotFound(f"cannot log artifacts: no folder at {source}")
        store, target = self._target(artifact_path)
        store.put_folder(source, target)

    def log_text(self, text: str, artifact_file: str) -> None:
        store, target = self._target(artifact_file)
        store.write_bytes(target, text.encode("utf-8"))

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        """Write a mapping as JSON, or as YAML when the file name ends in .yml/.yaml."""
        if artifact_file.endswith((".yml", ".yaml")):
            import yaml

            text = yaml.safe_dump(dict(dictionary), sort_keys=False)
        else:
            text = json.dumps(dictionary, indent=2, default=str)
        self.log_text(text, artifact_file)

    def download_artifacts(self, path: str, destination: str | os.PathLike[str]) -> Path:
        store, target = self._target(path)
        result: Path = store.download(target, Path(destination))
        return result

    # -- ending ---------------------------------------------------------------------

    def end(self, status: str | JobStatus = JobStatus.COMPLETED, reason: str | None = None) -> None:
        """Flush queued metrics, then record how the job ended."""
        if self._ended:
            return
        self._ended = True
        final = _parse_status(status)
        stack = _stack()
        if self in stack:
            stack.remove(self)
        _open_runs.pop(id(self), None)
        self._session.writer.let_go(self.job_id)
        try:
            self._session.writer.flush()
        finally:
            if self._owns_status:
                job_ops.set_job_status(self._session.store, self.name, final, reason=reason)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end(JobStatus.COMPLETED)
        elif isinstance(exc, KeyboardInterrupt):
            self.end(JobStatus.CANCELED, reason="interrupted")
        else:
            self.end(JobStatus.FAILED, reason=f"{type(exc).__name__}: {exc}"[:2000])


def _parse_status(status: str | JobStatus) -> JobStatus:
    if isinstance(status, JobStatus):
        return status
    from keel.tracking.search import MLFLOW_STATUSES

    text = str(status)
    if text.upper() in MLFLOW_STATUSES:
        return MLFLOW_STATUSES[text.upper()]
    try:
        return JobStatus(text.lower())
    except ValueError:
        raise InvalidInput(
            f"unknown status {text!r}", hint="expected completed, failed or canceled"
        ) from None


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    *,
    display_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Run:
    """Start a job and make it the active run; inside another run it becomes a child."""
    session = _current_session()
    stack = _stack()
    parent = stack[-1] if stack else None
    attached = os.environ.get("KEEL_JOB_NAME")
    if parent is None and name is None and attached and not _is_open(attached):
        return _attach(session, attached)
    if parent is not None and experiment is None:
        target = experiment_ops.get_experiment(session.store, parent.experiment_id)
    else:
        target = experiment_ops.get_or_create_experiment(session.store, experiment)
    job = job_ops.create_job(
        session.store,
        target,
        name=name,
        display_name=display_name,
        parent_id=parent.job_id if parent else None,
        user_id=_user(),
        description=description,
        tags={"keel.source": _source_name(), **dict(tags or {})},
        heartbeat=True,
    )
    run = Run(session, job)
    session.writer.keep_alive(job.id)
    stack.append(run)
    _open_runs[id(run)] = run
    return run


_step_sessions: dict[str, _Session] = {}


@contextlib.contextmanager
def logging_into(
    workspace: Workspace, *, job_id: int, name: str, experiment_id: int, artifact_location: str
) -> Iterator[Run]:
    """Make a job this thread's active run while a step runs in-process, so ``keel.log_metric``
    in the step's function lands on the step (the runner owns the job's status)."""
    key = str(workspace.config.root)
    session = _session if _session is not None and str(_session.workspace.config.root) == key else None
    if session is None:
        session = _step_sessions.get(key) or _step_sessions.setdefault(key, _Session(workspace))
    run = Run.for_job(
        session, job_id=job_id, name=name, experiment_id=experiment_id, artifact_location=artifact_location
    )
    stack = _stack()
    stack.append(run)
    try:
        yield run
    finally:
        if run in stack:
            stack.remove(run)
        if run.logged_metrics:
            session.writer.flush()


def _is_open(name: str) -> bool:
    return any(run.name == name for run in _stack())


def _attach(session: _Session, name: str) -> Run:
    """Log into the job Keel started this process for; its runner owns the status."""
    job = job_ops.get_job(session.store, name)
    run = Run(session, job, owns_status=False)
    _stack().append(run)
    return run


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _source_name() -> str:
    main = sys.modules.get("__main__")
    return str(getattr(main, "__file__", None) or sys.argv[0] or "<interactive>")


def active_run() -> Run | None:
    stack = _stack()
    return stack[-1] if stack else None


def _active_or_new() -> Run:
    stack = _stack()
    return stack[-1] if stack else start_run()


def end_run(status: str | JobStatus = JobStatus.COMPLETED) -> None:
    run = active_run()
    if run is not None:
        run.end(status)


def log_param(key: str, value: Any) -> None:
    _active_or_new().log_params({key: value})


def log_params(params: Mapping[str, Any]) -> None:
    _active_or_new().log_params(params)


def log_metric(key: str, value: Any, step: int | None = None, timestamp: int | None = None) -> None:
    _active_or_new().log_metric(key, value, step, timestamp)


def log_metrics(values: Mapping[str, Any], step: int | None = None, timestamp: int | None = None) -> None:
    _active_or_new().log_metrics(values, step, timestamp)


def set_tag(key: str, value: Any) -> None:
    _active_or_new().set_tags({key: value})


def set_tags(tags: Mapping[str, Any]) -> None:
    _active_or_new().set_tags(tags)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _active_or_new().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _active_or_new().log_artifacts(local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    _active_or_new().log_text(text, artifact_file)


def log_dict(dictionary: Mapping[str, Any], artifact_file: str) -> None:
    _active_or_new().log_dict(dictionary, artifact_file)


def flush() -> None:
    """Wait until every metric point logged so far is committed."""
    if _session is not None:
        _session.writer.flush()


# -- queries ------------------------------------------------------------------------


def _readable_session() -> _Session:
    session = _current_session()
    session.writer.flush()  # read your own writes
    job_ops.reap_dead_jobs(session.store, timeout_seconds=session.workspace.config.heartbeat_timeout_seconds)
    return session


def get_job(name: str) -> Job:
    """The job called ``name``, with its params, tags and metric summaries."""
    return job_ops.get_job(_readable_session().store, name)


def search_jobs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_results: int = 100,
) -> list[Job]:
    """Jobs matching ``filter`` (MLflow syntax plus min()/max()), newest first by default."""
    session = _readable_session()
    experiment_ids = None
    if experiment is not None:
        names = [experiment] if isinstance(experiment, str) else list(experiment)
        experiment_ids = [experiment_ops.get_experiment_by_name(session.store, n).id for n in names]
    page = _search(
        session.store,
        experiment_ids=experiment_ids,
        filter=filter,
        order_by=list(order_by)
        if isinstance(order_by, Sequence) and not isinstance(order_by, str)
        else order_by,
        max_results=max_results,
    )
    return page.jobs


def get_metric_history(job: str | Job, key: str, max_points: int | None = None) -> list[MetricPoint]:
    """A metric's points in step order; at most ``max_points`` when given (downsampled)."""
    session = _readable_session()
    job_id = job.id if isinstance(job, Job) else job_ops.resolve_job_id(session.store, job)
    return _history(session.store, job_id, key, max_points=max_points)


# -- process exit -------------------------------------------------------------------


def _note_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    global _died_of_exception
    _died_of_exception = True
    _previous_hook(exc_type, exc, tb)


def _end_open_runs_at_exit() -> None:
    status = JobStatus.FAILED if _died_of_exception else JobStatus.COMPLETED
    for run in sorted(_open_runs.values(), key=lambda r: -r.job_id):
        with contextlib.suppress(KeelError):
            run.end(status, reason="the program raised an exception" if _died_of_exception else None)
    close_all_writers()


_previous_hook = sys.excepthook
sys.excepthook = _note_uncaught
atexit.register(_end_open_runs_at_exit)
