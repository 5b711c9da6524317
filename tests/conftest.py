"""Shared fixtures: real SQLite files in tmp_path, and the machine's real PostgreSQL.

The ``store`` fixture runs each contract test on both databases. PostgreSQL is
not optional: if it cannot be reached the tests fail, they do not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from keel.store import Store, open_store
from keel.workspace import Workspace, resolve_workspace

POSTGRES_ADMIN_URL = os.environ.get(
    "KEEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test process, dropped at the end."""
    name = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - the machine is broken, say so loudly
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is required and unreachable: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(store: Store) -> None:
    from keel.store.schema import metadata

    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with store.write() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty metadata store: SQLite in tmp_path, then the PostgreSQL test database."""
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'keel.db'}")
    else:
        opened = open_store(request.getfixturevalue("postgres_url"))
        _truncate_all(opened)
        opened.cache.clear()
    yield opened
    opened.close()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """An embedded workspace in tmp_path, also made the current directory's default."""
    for variable in ("KEEL_WORKSPACE", "KEEL_DATABASE_URL", "KEEL_ARTIFACTS_URL", "KEEL_JOB_NAME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    opened = Workspace(resolve_workspace(tmp_path / ".keel"))
    yield opened
    opened.close()


@pytest.fixture
def sdk(workspace: Workspace) -> Iterator[Workspace]:
    """The tracking SDK pointed at a fresh workspace; open runs are ended afterwards."""
    from keel.tracking import sdk as tracking_sdk

    tracking_sdk.set_workspace(workspace.config.root)
    yield workspace
    while (run := tracking_sdk.active_run()) is not None:
        run.end()
    tracking_sdk.flush()
