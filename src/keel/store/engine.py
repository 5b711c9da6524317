"""Engines, transactions and schema bootstrap for the metadata store."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from keel.errors import Conflict, InvalidInput, Unavailable
from keel.store.schema import metadata

# The Alembic head this code expects. A test pins it to the migrations folder so
# the normal start-up path can check the schema without importing Alembic.
SCHEMA_REVISION = "0004"

SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
_WRITE_OPTION = "keel_write"
_SCHEMA_LOCK_ID = 0x6B65656C  # "keel": serialises schema creation on PostgreSQL


class Store:
    """A metadata database: an engine plus read and write transactions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        # Memo for facts that never change once written (metric key ids, ...).
        self.cache: dict[str, Any] = {}

    @property
    def url(self) -> str:
        """The database URL with any password masked, safe to print."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection in a read transaction (a consistent snapshot)."""
        with _translate_database_errors(self), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed when the block ends."""
        with _translate_database_errors(self), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _translate_database_errors(store: Store) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig).splitlines()[0] if exc.orig is not None else "unknown error"
        if "locked" in detail or "busy" in detail:
            raise Unavailable(
                f"the metadata database stayed locked for over {SQLITE_BUSY_TIMEOUT_SECONDS:.0f} s",
                hint="another process holds a long write transaction",
            ) from None
        raise Unavailable(f"cannot use the metadata database {store.url}: {detail}") from None


def normalise_url(url: str) -> str:
    """Pick the drivers Keel is tested with when a URL names only the database."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_store(url: str) -> Store:
    """Open the database at ``url``, creating or upgrading its schema as needed."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise InvalidInput(
            "the metadata database URL is not a valid SQLAlchemy URL",
            hint="expected sqlite:///path/keel.db or postgresql://user@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed.render_as_string(hide_password=False))
    elif parsed.get_backend_name() == "postgresql":
        engine = _postgresql_engine(parsed.render_as_string(hide_password=False))
    else:
        raise InvalidInput(
            f"unsupported metadata database {parsed.get_backend_name()!r}",
            hint="Keel stores metadata in SQLite or PostgreSQL",
        )
    store = Store(engine)
    ensure_schema(store)
    return store


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # LIKE is case-sensitive on PostgreSQL; make SQLite agree (ILIKE is the other one).
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgresql_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def ensure_schema(store: Store) -> None:
    """Create the schema on an empty database, or migrate an older one to head."""
    revision = _read_revision(store)
    if revision == SCHEMA_REVISION:
        return
    with store.write() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK_ID})
        revision = _revision_in(conn)
        if revision is None and not inspect(conn).get_table_names():
            metadata.create_all(conn)
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": SCHEMA_REVISION})
            return
        if revision == SCHEMA_REVISION:
            return
    _upgrade(store, revision)


def _read_revision(store: Store) -> str | None:
    for attempt in range(5):
        try:
            with store.read() as conn:
                return _revision_in(conn)
        except Unavailable:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def _revision_in(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def _upgrade(store: Store, revision: str | None) -> None:
    from keel.store.migrate import known_revisions, upgrade_to_head

    if revision is not None and revision not in known_revisions():
        raise Conflict(
            f"the metadata database {store.url} has schema revision {revision!r}, "
            "which this Keel does not know",
            hint="it was written by a newer Keel; upgrade Keel to use it",
        )
    upgrade_to_head(store)
