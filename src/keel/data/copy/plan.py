"""The plan: which files a copy moves, persisted before the first byte moves.

Each planned file is a ``copy_items`` row (path under the destination, size,
stamp, status, digest, error), written in one transaction for the whole plan.
Workers report results to the main thread, which writes status changes in
batches (one transaction per batch, at most ``FLUSH_SECONDS`` apart), so many
small files never pay a transaction each. A file is marked done only after it is
at its final name; a crash between the two leaves it pending, and the resume
finds it already there (see ``Transfer.adopt``) rather than sending it again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from keel.data.copy.listing import Entry, Tree, stamp_mtime_ns
from keel.data.copy.options import Filters
from keel.errors import InvalidInput
from keel.store import Store
from keel.store.schema import copy_items

PENDING, DONE, SKIPPED, FAILED = "pending", "done", "skipped", "failed"
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 20_000
_INSERT_ROWS = 10_000


@dataclass(slots=True)
class Item:
    """One planned file: its path under the destination, and where it comes from."""

    path: str
    size: int
    stamp: str
    source: int = 0  # index of the source (a file or folder) it is read from
    status: str = PENDING
    digest: str | None = None
    error: str | None = None

    @property
    def mtime_ns(self) -> int:
        return stamp_mtime_ns(self.stamp)


@dataclass
class Selection:
    """A plan and what was left out of it, for the summary."""

    items: list[Item]
    listed: int  # files at the sources
    unchanged: int = 0  # already at the destination (sync) or copied before (incremental)
    kept_paths: set[str] | None = None  # destination paths the source holds, for sync deletes


def select_items(
    sources: Sequence[Tree],
    filters: Filters,
    *,
    rename: str | None = None,
    window: tuple[float, float] | None = None,
) -> Selection:
    """The files of ``sources`` the filters keep; later sources win a path two of them share."""
    chosen: dict[str, Item] = {}
    kept_paths: set[str] = set()
    listed = 0
    named = filters.selects_by_name
    for index, tree in enumerate(sources):
        listed += len(tree.entries)
        for entry in tree.entries:
            path = rename if (tree.is_file and rename) else entry.path
            if named and not tree.is_file and not filters.keeps_path(path):
                continue
            kept_paths.add(path)
            if filters.keeps_time(entry.mtime) and _in_window(entry, window):
                chosen[path] = Item(path, entry.size, entry.stamp, index)
    if listed and not kept_paths and filters.selects_by_name:
        raise InvalidInput(
            f"no file matches the filters ({listed} file{'s' if listed != 1 else ''} at the source)",
            hint="check --include, --exclude and --prefix; globs without '/' match file names",
        )
    return Selection(list(chosen.values()), listed, kept_paths=kept_paths)


def _in_window(entry: Entry, window: tuple[float, float] | None) -> bool:
    """Incremental copies take files modified after the watermark, up to the window's end."""
    if window is None:
        return True
    start, end = window
    return start < entry.mtime <= end


def drop_unchanged(selection: Selection, existing: dict[str, Entry], *, window_ns: int = 0) -> Selection:
    """Leave out files the destination already has: same size, and not older than the source
    (what ``azcopy sync`` compares; Keel keeps the source's mtime on local copies). Object
    stores keep whole seconds, hence ``window_ns`` (rclone's ``--modify-window``)."""
    kept, unchanged = [], 0
    for item in selection.items:
        there = existing.get(item.path)
        if there is not None and there.size == item.size and there.mtime_ns + window_ns >= item.mtime_ns:
            unchanged += 1
        else:
            kept.append(item)
    selection.items = kept
    selection.unchanged += unchanged
    return selection


def save_plan(store: Store, job_id: int, items: Sequence[Item]) -> None:
    """Write the whole plan in one transaction (the job then owns it until it is done)."""
    rows = [(job_id, i.path, i.size, i.stamp, PENDING) for i in items]
    sql = _driver_sql(
        store, "INSERT INTO copy_items (job_id, path, size, modified, status) VALUES (?, ?, ?, ?, ?)"
    )
    with store.write() as conn:
        for start in range(0, len(rows), _INSERT_ROWS):
            conn.exec_driver_sql(sql, rows[start : start + _INSERT_ROWS])


def _driver_sql(store: Store, sql: str) -> str:
    """Plain DB-API SQL (rows as tuples, no per-row work in SQLAlchemy: 10,000 rows cost
    about 0.2 s through Core's executemany and 0.05 s this way)."""
    return sql.replace("?", "%s") if store.dialect == "postgresql" else sql


def load_plan(store: Store, job_id: int) -> list[Item]:
    """A job's plan as persisted, in path order."""
    query = (
        select(
            copy_items.c.path,
            copy_items.c.size,
            copy_items.c.modified,
            copy_items.c.status,
            copy_items.c.digest,
            copy_items.c.error,
        )
        .where(copy_items.c.job_id == job_id)
        .order_by(copy_items.c.path)
    )
    with store.read() as conn:
        return [
            Item(path, size, modified or "0", 0, status, digest, error)
            for path, size, modified, status, digest, error in conn.execute(query)
        ]


def done_items(store: Store, job_id: int) -> list[tuple[str, int, str, str | None]]:
    """(path, size, stamp, digest) of every file the job has put at its final name."""
    query = (
        select(copy_items.c.path, copy_items.c.size, copy_items.c.modified, copy_items.c.digest)
        .where(copy_items.c.job_id == job_id, copy_items.c.status == DONE)
        .order_by(copy_items.c.path)
    )
    with store.read() as conn:
        return [(row[0], row[1], row[2] or "0", row[3]) for row in conn.execute(query)]


class StatusBatch:
    """Status changes waiting to be written; ``flush`` writes them in one transaction."""

    def __init__(self, store: Store, job_id: int) -> None:
        self._store = store
        self._job_id = job_id
        self._rows: list[tuple[str, str | None, str | None, int, str]] = []
        self._sql = _driver_sql(
            store, "UPDATE copy_items SET status = ?, digest = ?, error = ? WHERE job_id = ? AND path = ?"
        )
        self._flushed = time.monotonic()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, item: Item) -> None:
        self._rows.append((item.status, item.digest, item.error, self._job_id, item.path))

    def flush_if_due(self, rows: int = FLUSH_ROWS) -> None:
        """Flush once ``rows`` changes wait or ``FLUSH_SECONDS`` have passed since the last flush."""
        if len(self._rows) >= rows or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        with self._store.write() as conn:
            conn.exec_driver_sql(self._sql, rows)


def total_bytes(items: Iterable[Item]) -> int:
    return sum(item.size for item in items)
