"""The schema: created fresh, migrated by Alembic, identical either way, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from keel.errors import Conflict, InvalidInput, Unavailable
from keel.store import SCHEMA_REVISION, Store, open_store
from keel.store.engine import normalise_url
from keel.store.migrate import head_revision, upgrade_to_head
from keel.store.schema import metadata


def test_the_code_expects_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_a_new_database_gets_every_table_and_the_current_revision(store: Store) -> None:
    with store.read() as conn:
        tables = set(inspect(conn).get_table_names())
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert revision == SCHEMA_REVISION


def _diff_against_models(store: Store) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.read() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]


def test_migrations_build_exactly_the_declared_schema(store: Store) -> None:
    """Drop everything, run the Alembic migrations, and compare with schema.py."""
    with store.write() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))
    upgrade_to_head(store)
    assert _diff_against_models(store) == []


def test_create_all_matches_the_declared_schema(store: Store) -> None:
    assert _diff_against_models(store) == []


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    open_store(url).close()
    again = open_store(url)
    with again.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    again.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    opened = open_store(f"sqlite:///{tmp_path / 'keel.db'}")
    with opened.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    opened.close()


def test_a_database_from_a_newer_keel_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    open_store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(Conflict, match="newer Keel"):
        open_store(url)


def test_unsupported_and_malformed_urls_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unsupported"):
        open_store("mysql://root@127.0.0.1/test")
    with pytest.raises(InvalidInput, match="not a valid"):
        open_store("not a url at all")


def test_an_unreachable_postgres_is_unavailable_and_the_password_stays_hidden() -> None:
    with pytest.raises(Unavailable) as caught:
        open_store("postgresql://keel:s3cret-pass@127.0.0.1:1/keel")
    assert "s3cret-pass" not in str(caught.value)
    assert "***" in str(caught.value)


def test_plain_postgres_urls_use_psycopg() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_database_from_the_previous_release_is_migrated_with_its_data(tmp_path: Path) -> None:
    """Build a 0001 database through Alembic, add a job, then open it: it migrates and keeps the job."""
    from alembic import command
    from alembic.config import Config

    from keel.store.migrate import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO experiments (id, name, lifecycle_stage, created_at, updated_at) "
                "VALUES (1, 'e', 'active', 1, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (name, experiment_id, type, status, created_at, lifecycle_stage, "
                "artifact_location) "
                "VALUES ('kept_job', 1, 'run', 'completed', 1, 'active', '1/kept_job/artifacts')"
            )
        )
    engine.dispose()
    migrated = open_store(url)
    with migrated.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
        assert conn.execute(text("SELECT name, step_name FROM jobs")).one() == ("kept_job", None)
    assert _diff_against_models(migrated) == []
    migrated.close()
