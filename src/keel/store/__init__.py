"""Metadata persistence: one schema on SQLite (embedded) and PostgreSQL (team).

Domain packages receive a :class:`Store` and run their SQL inside ``store.read()``
or ``store.write()``. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``
so that concurrent writers queue on the busy timeout instead of failing with
"database is locked" when a read lock cannot be upgraded.
"""

from __future__ import annotations

from keel.store.engine import SCHEMA_REVISION, Store, open_store

__all__ = ["SCHEMA_REVISION", "Store", "open_store"]
