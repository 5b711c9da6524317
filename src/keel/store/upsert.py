"""INSERT … ON CONFLICT DO UPDATE, spelled once for both databases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """Insert ``rows``; where ``key`` matches an existing row, overwrite ``update`` columns.

    With ``update=[]`` existing rows are left alone (ON CONFLICT DO NOTHING).
    """
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c not in key) if update is None else tuple(update)
    memo_key = (conn.dialect.name, table.name, tuple(key), columns)
    statement = _STATEMENTS.get(memo_key)
    if statement is None:
        statement = _statement(conn.dialect.name, table, key, columns)
        _STATEMENTS[memo_key] = statement
    conn.execute(statement, list(rows))


# Building the statement costs more than running it for a row or two (the per-request
# case of the MLflow API), and a built statement is immutable, so each shape is built once.
_STATEMENTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def _statement(dialect_name: str, table: Table, key: Sequence[str], columns: Sequence[str]) -> Any:
    if dialect_name == "postgresql":  # each dialect imported only when used (start-up time)
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement: Any = insert(table)
    if columns:
        return statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in columns},
        )
    return statement.on_conflict_do_nothing(index_elements=list(key))
