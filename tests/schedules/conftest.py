"""Schedules tests: real workspaces (SQLite in tmp_path, or the machine's PostgreSQL),
real runner processes, real folders, a real HTTP app."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from keel.store.schema import metadata
from keel.workspace import Workspace, resolve_workspace
from tests.azurite import azurite

__all__ = ["azurite"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_workspace(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A workspace on SQLite, then one on the machine's PostgreSQL (emptied first)."""
    for variable in ("KEEL_WORKSPACE", "KEEL_DATABASE_URL", "KEEL_ARTIFACTS_URL", "KEEL_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    environ = {}
    if request.param == "postgresql":
        environ["KEEL_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    opened = Workspace(resolve_workspace(tmp_path / ".keel", environ=environ))
    if request.param == "postgresql":
        names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        with opened.store.write() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    yield opened
    opened.close()


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


ECHO_JOB = """\
type: command
command: echo "${{inputs.note}}"
inputs:
  note: ${{trigger.time}}
"""


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 30.0,
    every: float = 0.1,
    tick: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``condition`` (ticking a scheduler between tries) until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if tick is not None:
            tick()
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(every)


@pytest.fixture(autouse=True)
def close_schedulers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Scheduler a test makes is closed after it: its watcher and its fork server stop."""
    from keel.schedules.loop import Scheduler

    made: list[Scheduler] = []
    original = Scheduler.__init__

    def remember(self: Scheduler, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Scheduler, "__init__", remember)
    yield
    for scheduler in made:
        scheduler.close()
