"""Pipelines with approval steps, run for real, and a workspace on each database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel.jobs.submit import run, submit
from keel.specs import load_job
from keel.store import Store
from keel.tracking.entities import Job
from keel.tracking.jobs import get_job
from keel.workspace import Workspace, WorkspaceConfig

GATED = """\
type: pipeline
experiment_name: gates
jobs:
  train:
    command: echo model-v1 > ${{{{outputs.model}}}}/model.txt
    outputs:
      model: {{type: uri_folder}}
  review:
    type: approval
    instructions: Check the model's metrics
    inputs:
      model: ${{{{parent.jobs.train.outputs.model}}}}
      threshold: 0.8
{gate}
  deploy:
    command: cat ${{{{inputs.model}}}}/model.txt && echo threshold=${{{{inputs.threshold}}}}
    inputs:
      model: ${{{{parent.jobs.review.outputs.model}}}}
      threshold: ${{{{parent.jobs.review.outputs.threshold}}}}
"""


def gated(
    tmp_path: Path, gate: str = "    approvers: [alice, bob]\n    timeout: 1h", name: str = "p"
) -> Path:
    """A train → review (approval) → deploy pipeline file; ``gate`` adds keys to the review step."""
    path = tmp_path / f"{name}.yml"
    path.write_text(GATED.format(gate=gate))
    return path


def start(workspace: Workspace, path: Path) -> Job:
    """Submit and run in this process until the pipeline ends or parks; returns the root job."""
    spec = load_job(path)
    job = submit(workspace, spec)
    run(workspace, job.name)
    return get_job(workspace.store, job.name)


def wait_until_ended(workspace: Workspace, name: str, timeout: float = 60) -> Job:
    """Poll the store until ``name`` is in a final state (a detached runner finishes it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get_job(workspace.store, name)
        if job.status.is_terminal:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {name} did not end within {timeout} s (it is {get_job(workspace.store, name).status})")


def steps(workspace: Workspace, job: Job) -> dict[str, Job]:
    from keel.tracking.search import search_jobs

    return {s.step_name or s.name: s for s in search_jobs(workspace.store, parent_id=job.id).jobs}


def log_of(workspace: Workspace, job: Job) -> str:
    return workspace.artifacts.read_bytes(f"{job.artifact_location}/user_logs/std_log.txt").decode()


@pytest.fixture
def on_store(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace over the ``store`` fixture's database (SQLite, then PostgreSQL)."""
    for variable in ("KEEL_WORKSPACE", "KEEL_DATABASE_URL", "KEEL_ARTIFACTS_URL", "KEEL_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    config = WorkspaceConfig(
        root=tmp_path / ".keel",
        database_url=store.engine.url.render_as_string(hide_password=False),
        artifacts_url=(tmp_path / ".keel" / "artifacts").as_uri(),
    )
    return Workspace(config, _store=store)
