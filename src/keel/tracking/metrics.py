"""Metric points: batched writes, per-key summaries, and downsampled history.

A write inserts the points and folds them into the (job, key) summary rows in the
same transaction, so "last", "min", "max" and "count" are always exact and
searching never reads the history. "Last" is the point with the greatest
(step, timestamp), as in MLflow; min and max ignore NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text

from keel.errors import InvalidInput
from keel.store import Store
from keel.store.schema import metric_keys, metric_summaries, metrics
from keel.store.upsert import upsert
from keel.tracking.entities import MetricPoint, MetricSummary

# (job id, key, value, timestamp ms, step): the queued form of one point.
PendingPoint = tuple[int, str, float, int, int]

_KEY_CACHE = "metric_key_ids"
_EXTREME_POINTS = 4  # first, last, min and max are always kept when downsampling


@dataclass
class _Fold:
    """Running summary of one (job, key) while a batch is folded in."""

    point_count: int
    first_step: int
    last_step: int
    last_timestamp: int
    last_value: float | None
    min_value: float | None
    min_step: int | None
    max_value: float | None
    max_step: int | None

    def add(self, value: float, timestamp: int, step: int) -> None:
        self.point_count += 1
        self.first_step = min(self.first_step, step)
        if (step, timestamp) >= (self.last_step, self.last_timestamp):
            self.last_step, self.last_timestamp = step, timestamp
            self.last_value = None if math.isnan(value) else value
        if not math.isnan(value):
            if self.min_value is None or value < self.min_value:
                self.min_value, self.min_step = value, step
            if self.max_value is None or value > self.max_value:
                self.max_value, self.max_step = value, step

    def merge(self, other: _Fold) -> None:
        """Fold a stored summary (``other``) under this batch's points."""
        self.point_count += other.point_count
        self.first_step = min(self.first_step, other.first_step)
        if (other.last_step, other.last_timestamp) > (self.last_step, self.last_timestamp):
            self.last_step, self.last_timestamp = other.last_step, other.last_timestamp
            self.last_value = other.last_value
        if other.min_value is not None and (
            self.min_value is None or other.min_value < self.min_value
        ):
            self.min_value, self.min_step = other.min_value, other.min_step
        if other.max_value is not None and (
            self.max_value is None or other.max_value > self.max_value
        ):
            self.max_value, self.max_step = other.max_value, other.max_step


def write_metrics(store: Store, points: Sequence[PendingPoint]) -> None:
    """Insert points and update their summaries in one transaction."""
    if not points:
        return
    key_ids = metric_key_ids(store, {point[1] for point in points})
    folds = _fold_batch(points, key_ids)
    with store.write() as conn:
        _insert_points(conn, points, key_ids)
        _merge_stored_summaries(conn, folds)
        upsert(
            conn,
            metric_summaries,
            [
                {"job_id": job_id, "key_id": key_id, **fold.__dict__}
                for (job_id, key_id), fold in folds.items()
            ],
            key=["job_id", "key_id"],
        )


def _fold_batch(
    points: Sequence[PendingPoint], key_ids: dict[str, int]
) -> dict[tuple[int, int], _Fold]:
    folds: dict[tuple[int, int], _Fold] = {}
    for job_id, key, value, timestamp, step in points:
        pair = (job_id, key_ids[key])
        fold = folds.get(pair)
        if fold is None:
            nan = math.isnan(value)
            folds[pair] = _Fold(
                point_count=1,
                first_step=step,
                last_step=step,
                last_timestamp=timestamp,
                last_value=None if nan else value,
                min_value=None if nan else value,
                min_step=None if nan else step,
                max_value=None if nan else value,
                max_step=None if nan else step,
            )
        else:
            fold.add(value, timestamp, step)
    return folds


def _insert_points(
    conn: Connection, points: Sequence[PendingPoint], key_ids: dict[str, int]
) -> None:
    rows = [
        (job_id, key_ids[key], step, timestamp, None if math.isnan(value) else value)
        for job_id, key, value, timestamp, step in points
    ]
    if conn.dialect.name == "sqlite":
        # The driver's executemany over plain tuples is several times faster than
        # building a dict per point; this is the hot path of metric ingest.
        conn.exec_driver_sql(
            "INSERT INTO metrics (job_id, key_id, step, timestamp, value) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        return
    conn.execute(
        insert(metrics),
        [
            {"job_id": r[0], "key_id": r[1], "step": r[2], "timestamp": r[3], "value": r[4]}
            for r in rows
        ],
    )


def _merge_stored_summaries(conn: Connection, folds: dict[tuple[int, int], _Fold]) -> None:
    job_ids = sorted({job_id for job_id, _ in folds})
    key_ids = sorted({key_id for _, key_id in folds})
    query = select(metric_summaries).where(
        metric_summaries.c.job_id.in_(job_ids), metric_summaries.c.key_id.in_(key_ids)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    for row in conn.execute(query):
        fold = folds.get((row.job_id, row.key_id))
        if fold is not None:
            fold.merge(
                _Fold(
                    point_count=row.point_count,
                    first_step=row.first_step,
                    last_step=row.last_step,
                    last_timestamp=row.last_timestamp,
                    last_value=row.last_value,
                    min_value=row.min_value,
                    min_step=row.min_step,
                    max_value=row.max_value,
                    max_step=row.max_step,
                )
            )


def metric_key_ids(store: Store, keys: set[str]) -> dict[str, int]:
    """Integer ids for metric keys, created on first sight and cached per store."""
    cache: dict[str, int] = store.cache.setdefault(_KEY_CACHE, {})
    missing = [key for key in keys if key not in cache]
    if missing:
        with store.write() as conn:
            upsert(conn, metric_keys, [{"name": key} for key in missing], key=["name"], update=[])
            found = conn.execute(
                select(metric_keys.c.name, metric_keys.c.id).where(metric_keys.c.name.in_(missing))
            )
            cache.update({name: key_id for name, key_id in found})
    return {key: cache[key] for key in keys}


def lookup_key_id(conn: Connection, key: str) -> int | None:
    return conn.execute(select(metric_keys.c.id).where(metric_keys.c.name == key)).scalar()


def summaries_for(conn: Connection, job_ids: Sequence[int]) -> dict[int, dict[str, MetricSummary]]:
    found: dict[int, dict[str, MetricSummary]] = {}
    query = (
        select(metric_summaries, metric_keys.c.name)
        .join(metric_keys, metric_keys.c.id == metric_summaries.c.key_id)
        .where(metric_summaries.c.job_id.in_(job_ids))
    )
    for row in conn.execute(query):
        found.setdefault(row.job_id, {})[row.name] = MetricSummary(
            key=row.name,
            count=row.point_count,
            last=_from_db(row.last_value),
            last_step=row.last_step,
            last_timestamp=row.last_timestamp,
            min=_from_db(row.min_value),
            min_step=row.min_step,
            max=_from_db(row.max_value),
            max_step=row.max_step,
            first_step=row.first_step,
        )
    return found


def get_metric_history(
    store: Store, job_id: int, key: str, *, max_points: int | None = None
) -> list[MetricPoint]:
    """Every point of ``key`` in step order, or at most ``max_points`` of them.

    Downsampling picks points spread evenly over the step range (one index seek
    each, so a million-point history costs a thousand seeks, not a scan) and
    always keeps the first, last, minimum and maximum points.
    """
    if max_points is not None and max_points < 1:
        raise InvalidInput(f"max_points must be at least 1, got {max_points}")
    with store.read() as conn:
        key_id = lookup_key_id(conn, key)
        if key_id is None:
            return []
        summary = conn.execute(
            select(metric_summaries).where(
                metric_summaries.c.job_id == job_id, metric_summaries.c.key_id == key_id
            )
        ).first()
        if summary is None:
            return []
        if max_points is None or summary.point_count <= max_points:
            query = (
                select(metrics.c.step, metrics.c.timestamp, metrics.c.value)
                .where(metrics.c.job_id == job_id, metrics.c.key_id == key_id)
                .order_by(metrics.c.step, metrics.c.timestamp)
            )
            return [MetricPoint(key, _from_db(v), s, t) for s, t, v in conn.execute(query)]
        steps = _sample_steps(conn, job_id, key_id, summary, max_points)
        query = (
            select(metrics.c.step, metrics.c.timestamp, metrics.c.value)
            .where(
                metrics.c.job_id == job_id,
                metrics.c.key_id == key_id,
                metrics.c.step.in_(bindparam("steps", expanding=True)),
            )
            .order_by(metrics.c.step, metrics.c.timestamp)
        )
        points: dict[int, MetricPoint] = {}
        for s, t, v in conn.execute(query, {"steps": sorted(steps)}):
            points.setdefault(s, MetricPoint(key, _from_db(v), s, t))
        return list(points.values())[:max_points]


def _sample_steps(
    conn: Connection, job_id: int, key_id: int, summary: Any, max_points: int
) -> set[int]:
    first, last = int(summary.first_step), int(summary.last_step)
    extremes = {first, last} | {s for s in (summary.min_step, summary.max_step) if s is not None}
    buckets = max(max_points - _EXTREME_POINTS, 1)
    width = (last - first + 1) / buckets
    starts = sorted({first + int(i * width) for i in range(buckets)})
    rows = ", ".join(f"(:s{i})" for i in range(len(starts)))
    query = text(
        f"WITH bucket(s) AS (VALUES {rows}) "
        "SELECT (SELECT m.step FROM metrics m WHERE m.job_id = :job AND m.key_id = :key "
        "AND m.step >= bucket.s ORDER BY m.step LIMIT 1) FROM bucket"
    )
    bind: dict[str, Any] = {f"s{i}": start for i, start in enumerate(starts)}
    bind.update(job=job_id, key=key_id)
    sampled = {s for (s,) in conn.execute(query, bind) if s is not None}
    return (sampled | extremes) if len(sampled | extremes) <= max_points else sampled


def _from_db(value: float | None) -> float:
    return math.nan if value is None else float(value)
