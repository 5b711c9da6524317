"""What every MLflow handler shares: the workspace and memos of facts that never change."""

from __future__ import annotations

from keel.artifacts import ArtifactStore
from keel.store import Store
from keel.tracking.jobs import resolve_job_id
from keel.tracking.validation import check_key
from keel.workspace import Workspace

# Enough for every run a busy server logs into; past it the memo starts over.
_MEMO_LIMIT = 100_000


class Context:
    """The workspace behind one server, with per-process memos for the hot path.

    A job's name and id never change once written, and a metric key that passed its
    check once always passes, so neither needs the database or the regex again.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.store: Store = workspace.store
        self.artifacts: ArtifactStore = workspace.artifacts
        self._job_ids: dict[str, int] = {}
        self.known_metric_keys: set[str] = set()

    def job_id(self, run_id: str) -> int:
        """The id of the job named ``run_id``, or NotFound."""
        found = self._job_ids.get(run_id)
        if found is None:
            found = resolve_job_id(self.store, run_id)
            self.remember_job(run_id, found)
        return found

    def remember_job(self, name: str, job_id: int) -> None:
        if len(self._job_ids) >= _MEMO_LIMIT:
            self._job_ids.clear()
        self._job_ids[name] = job_id

    def forget_job(self, name: str) -> None:
        self._job_ids.pop(name, None)

    def metric_key(self, key: str) -> str:
        """``key`` if it is a valid metric key, else InvalidInput."""
        if key not in self.known_metric_keys:
            check_key(key, "metric")
            if len(self.known_metric_keys) >= _MEMO_LIMIT:
                self.known_metric_keys.clear()
            self.known_metric_keys.add(key)
        return key
