"""Incremental copies: a watermark per (sources, destination, filters), advanced atomically.

A run copies the files modified after the watermark and no later than the
window's end — the moment its listing began, less ``SETTLE_SECONDS`` so a file
still being written is left for the next run. When every file is copied, the
watermark moves to the window's end in one transaction, the same one that records
the destination as a new data asset version when ``--asset`` names one. So a
crash before that transaction leaves the watermark where it was (the next run
copies the same window again, over the same names: nothing duplicated) and a
crash after it has recorded both (nothing lost). The update is a compare-and-set
on the previous value: two runs racing on one source cannot both advance it.

A source file whose modification time is set into the past after the watermark
passed it (``cp -p``, ``touch -d``, extracting an archive) is not seen again;
that is the nature of watermarks on modification times (ADF has the same rule).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from keel.clock import now_ms
from keel.data.copy.options import CopyRequest, iso, parse_time
from keel.errors import Conflict
from keel.store import Store
from keel.store.schema import copy_watermarks

SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Window:
    """The files an incremental run takes: modified in (start, end]."""

    key: str
    previous: str | None  # the watermark as read (None: never copied)
    end: str

    @property
    def bounds(self) -> tuple[float, float]:
        start = parse_time(self.previous, "watermark") if self.previous else float("-inf")
        return start if start is not None else float("-inf"), parse_time(self.end, "watermark") or 0.0

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "previous": self.previous, "end": self.end})

    @classmethod
    def from_json(cls, text: str) -> Window:
        raw = json.loads(text)
        return cls(raw["key"], raw["previous"], raw["end"])


def watermark_key(request: CopyRequest) -> str:
    """The same sources, destination and name filters share one watermark."""
    o = request.options
    basis = json.dumps(
        [list(request.sources), request.destination, list(o.include), list(o.exclude), o.prefix],
        sort_keys=True,
    )
    return "copy:" + hashlib.sha256(basis.encode()).hexdigest()[:40]


def open_window(store: Store, request: CopyRequest, *, listed_at: float | None = None) -> Window:
    key = watermark_key(request)
    with store.read() as conn:
        previous = conn.execute(
            select(copy_watermarks.c.watermark).where(copy_watermarks.c.key == key)
        ).scalar_one_or_none()
    end = (listed_at if listed_at is not None else time.time()) - SETTLE_SECONDS
    return Window(key, previous, iso(end))


def advance(
    conn: Connection, window: Window, *, asset_name: str | None = None, asset_version: str | None = None
) -> None:
    """Move the watermark to the window's end, inside the caller's transaction.

    Raises Conflict when another run moved it first (the caller's transaction is
    then rolled back with everything else it did).
    """
    values = {
        "watermark": window.end,
        "asset_name": asset_name,
        "asset_version": asset_version,
        "updated_at": now_ms(),
    }
    if window.previous is None:
        exists = conn.execute(
            select(copy_watermarks.c.key).where(copy_watermarks.c.key == window.key)
        ).first()
        if exists is None:
            conn.execute(insert(copy_watermarks).values(key=window.key, **values))
            return
    else:
        moved = conn.execute(
            update(copy_watermarks)
            .where(copy_watermarks.c.key == window.key, copy_watermarks.c.watermark == window.previous)
            .values(**values)
        )
        if moved.rowcount == 1:
            return
    raise Conflict(
        "another incremental copy of the same source advanced the watermark first",
        hint="nothing was recorded for this run; run it again to copy what is new since",
    )


def read_watermark(store: Store, request: CopyRequest) -> str | None:
    with store.read() as conn:
        return conn.execute(
            select(copy_watermarks.c.watermark).where(copy_watermarks.c.key == watermark_key(request))
        ).scalar_one_or_none()


Advance = Callable[[Connection], None]
