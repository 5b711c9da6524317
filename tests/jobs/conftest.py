"""Fixtures for running real jobs: a copy of an example project and a workspace beside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from keel.jobs.submit import run, submit
from keel.specs import load_job
from keel.tracking.entities import Job
from keel.tracking.jobs import get_job
from keel.workspace import Workspace

PROJECTS = Path(__file__).parent / "projects"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of the flights example project (tests may edit it)."""
    target = tmp_path / "flights"
    shutil.copytree(PROJECTS / "flights", target)
    return target


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file every step script appends its name to, to count real executions."""
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("KEEL_TEST_LEDGER", str(path))
    return path


def executions(ledger: Path) -> list[str]:
    return [line.split()[0] for line in ledger.read_text().splitlines()] if ledger.exists() else []


def run_file(workspace: Workspace, path: Path, overrides: Sequence[str] = ()) -> Job:
    """Load, submit and run a job file in this process; returns the finished root job."""
    from keel.jobs import components

    spec = load_job(path, overrides, lookup_component=components.lookup(workspace))
    job = submit(workspace, spec)
    run(workspace, job.name)
    return get_job(workspace.store, job.name)


def steps_of(workspace: Workspace, job: Job) -> dict[str, Job]:
    from keel.tracking.search import search_jobs

    found = search_jobs(workspace.store, parent_id=job.id, max_results=100).jobs
    return {step.step_name or step.name: step for step in found}


def keel_cli(
    workspace: Workspace, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace.config.root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd)
