"""Profiles of tabular data: the schema and per-column statistics, cheap to compare.

Each version of tabular data (CSV, TSV, Parquet or JSON lines files, folders of
them, MLTable folders) gets a profile when it is registered; monitoring compares
them later. DuckDB computes it in two vectorized, parallel scans, streaming local
files (an MLTable is read into Arrow first): ten million rows take seconds.

A profile is plain JSON; ``format`` versions it::

    {"format": "keel.profile/1", "rows": 3, "source": "csv",
     "methods": {"distinct": "approximate: HyperLogLog", "quantiles": "…sample of 100,000 rows…"},
     "columns": [
       {"name": "delay", "type": "DOUBLE", "kind": "numeric", "count": 2, "nulls": 1,
        "distinct": 2, "min": -3.0, "max": 12.0, "mean": 4.5, "std": 10.61,
        "quantiles": {"p1": -2.85, "p5": -2.25, "p25": 0.75, …, "p99": 11.85},
        "histogram": {"edges": [-3.0, -2.25, …, 12.0], "counts": [1, 0, …, 1], "below": 0, "above": 0}},
       {"name": "carrier", "type": "VARCHAR", "kind": "categorical", "count": 3, "nulls": 0,
        "distinct": 2, "top": {"values": ["UA", "AA"], "counts": [2, 1], "other": 0}},
       {"name": "day", "type": "DATE", "kind": "temporal", "count": 3, "nulls": 0, "distinct": 3,
        "min": "2024-01-01", "max": "2024-01-31"},
       {"name": "tags", "type": "VARCHAR[]", "kind": "other", "count": 3, "nulls": 0}]}

- ``count`` is the values that are not null; ``nulls`` counts nulls and, in float
  columns, NaN (as pandas does). ``distinct`` is approximate (HyperLogLog, within
  a few percent; exact for small counts in practice).
- Numbers (integers, floats, decimals) get ``min``, ``max``, ``mean``, ``std`` (the
  sample standard deviation, n-1, as pandas), ``quantiles`` (interpolated as numpy
  and pandas do, over a uniform sample of ``SAMPLE`` (100,000) rows: exact for
  smaller data, approximate above) and a ``histogram``, all over finite values.
  The histogram has ``BINS`` (20) equal-width bins from min to max (one when min
  equals max); ``edges`` has one more entry than ``counts``, and the last bin
  includes its upper edge.
- Strings and booleans are categorical: ``top`` holds the ``TOP`` (20) most frequent
  values, most frequent first (ties by value), and ``other`` counts the rest.
- Dates and times get ``min`` and ``max`` (ISO 8601); other types counts only.

Comparing: ``profile_of(…, baseline=reference)`` bins numbers on the baseline's
edges and counts the baseline's top values, so the two profiles line up element
by element and drift is arithmetic on short vectors, never a rescan. Values
outside the baseline's edges fall in its first or last bin and are also counted
in ``below`` / ``above``. :func:`compare_profiles` computes the population
stability index per column; for profiles binned independently it re-bins the
second on the first's edges (assuming values spread evenly within a bin) and says
the result is approximate.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from keel.data.locations import Location
from keel.data.tabular import find_tabular, register
from keel.errors import InvalidInput
from keel.workspace import Workspace

FORMAT = "keel.profile/1"
TABULAR_TYPES = ("uri_file", "uri_folder", "mltable")
BINS = 20
TOP = 20
SAMPLE = 100_000
QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
PROFILE_COLUMNS = ("Column", "Type", "Count", "Nulls", "Distinct", "Min", "Max", "Mean", "Std", "Top")
METHODS = {
    "distinct": "approximate: HyperLogLog",
    "quantiles": f"linear interpolation over a uniform sample of {SAMPLE:,} rows (all rows below that)",
}
_VIEW = "keel_profiled"
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_INTEGERS |= {"UBIGINT", "UHUGEINT"}
_log = logging.getLogger(__name__)


def profile_of(
    location: Location,
    data_type: str,
    *,
    baseline: dict[str, Any] | None = None,
    workspace: Workspace | None = None,
) -> dict[str, Any] | None:
    """The profile of the data at ``location``, or None when it is not tabular.

    ``baseline``: another profile whose bins and categories this one should use.
    ``workspace``: needed only for MLTables whose paths name datastores.
    Raises :class:`InvalidInput` when data that looks tabular cannot be read.
    """
    if data_type not in TABULAR_TYPES:
        return None
    table = find_tabular(location)
    if table is None:
        return None
    try:
        import duckdb  # noqa: F401
    except ImportError:
        _log.warning("no profile for %s: profiles need DuckDB (pip install duckdb)", location.uri)
        return None
    with _connection(location.uri) as con:
        register(con, _VIEW, table, workspace=workspace)
        return _profile(con, table.kind, baseline)


def profile_table(table: Any, *, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile of a ``pyarrow.Table`` (or anything DuckDB can scan) already at hand."""
    with _connection("the table") as con:
        con.register(_VIEW, table)
        return _profile(con, "arrow", baseline)


@contextlib.contextmanager
def _connection(name: str) -> Iterator[Any]:
    """A private DuckDB database; it spills to a temporary folder, and its errors name the data."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="keel-profile-") as spill:
        con = duckdb.connect(config={"temp_directory": spill})
        try:
            yield con
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot profile {name}: {str(exc).splitlines()[0]}") from None
        finally:
            con.close()


@dataclass(frozen=True)
class _Column:
    name: str
    type: str

    @property
    def kind(self) -> str:
        kind = self.type.upper()
        if kind in _INTEGERS or kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL"):
            return "numeric"
        if kind in ("VARCHAR", "BOOLEAN") or kind.startswith("ENUM"):
            return "categorical"
        if kind in ("DATE", "TIME") or kind.startswith(("TIMESTAMP", "TIME ")):
            return "temporal"
        return "other"

    @property
    def quoted(self) -> str:
        return '"' + self.name.replace('"', '""') + '"'

    @property
    def is_float(self) -> bool:
        return self.type.upper() in ("FLOAT", "DOUBLE")

    @property
    def present(self) -> str:
        """The column with NaN as null (floats)."""
        return (
            f"CASE WHEN isnan({self.quoted}) THEN NULL ELSE {self.quoted} END"
            if self.is_float
            else self.quoted
        )

    @property
    def number(self) -> str:
        """The column's finite values, as numbers statistics can take."""
        if self.is_float:
            return f"CASE WHEN isfinite({self.quoted}) THEN {self.quoted} END"
        return f"{self.quoted}::DOUBLE" if self.type.upper().startswith("DECIMAL") else self.quoted


def _profile(con: Any, source: str, baseline: dict[str, Any] | None) -> dict[str, Any]:
    relation = con.table(_VIEW)
    columns = [_Column(name, str(kind)) for name, kind in zip(relation.columns, relation.types, strict=True)]
    rows, stats = _first_pass(con, columns)
    numeric = [index for index, column in enumerate(columns) if column.kind == "numeric"]
    for index, quantiles in zip(numeric, _quantiles(con, [columns[i] for i in numeric]), strict=True):
        stats[index]["quantiles"] = quantiles
    previous = {column["name"]: column for column in (baseline or {}).get("columns", [])}
    for column, found in zip(columns, stats, strict=True):
        before = previous.get(column.name, {})
        if column.kind == "numeric" and found.get("min") is not None:
            found["histogram"] = _histogram(con, column, found, before.get("histogram"))
        elif column.kind == "categorical":
            found["top"] = _top(con, column, found["count"], before.get("top"))
    return {"format": FORMAT, "rows": rows, "source": source, "methods": dict(METHODS), "columns": stats}


def _first_pass(con: Any, columns: list[_Column]) -> tuple[int, list[dict[str, Any]]]:
    """One scan: counts, distinct estimates, and the moments of numbers."""
    expressions = ["count(*)"]
    for column in columns:
        nan = f"count_if(isnan({column.quoted}))" if column.is_float else "0"
        expressions += [f"count({column.quoted})", nan, f"approx_count_distinct({column.present})"]
        if column.kind == "numeric":
            value = column.number
            expressions += [f"min({value})", f"max({value})", f"avg({value})", f"stddev_samp({value})"]
        elif column.kind == "temporal":
            expressions += [f"min({column.quoted})", f"max({column.quoted})"]
    row = list(con.execute(f"SELECT {', '.join(expressions)} FROM {_VIEW}").fetchone())
    rows, position, stats = int(row[0]), 1, []
    for column in columns:
        width = {"numeric": 7, "temporal": 5}.get(column.kind, 3)
        stats.append(_column_stats(column, rows, row[position : position + width]))
        position += width
    return rows, stats


def _column_stats(column: _Column, rows: int, values: list[Any]) -> dict[str, Any]:
    count, distinct = int(values[0]) - int(values[1]), int(values[2] or 0)  # NaN is not a value
    stats: dict[str, Any] = {"name": column.name, "type": column.type, "kind": column.kind}
    stats.update(count=count, nulls=rows - count)
    if column.kind == "other":
        return stats
    stats["distinct"] = distinct
    if column.kind == "temporal":
        stats.update(min=_iso(values[3]), max=_iso(values[4]))
    elif column.kind == "numeric":
        low, high, mean, std = values[3:7]
        stats.update(min=_number(low), max=_number(high), mean=_number(mean), std=_number(std))
    return stats


def _quantiles(con: Any, columns: list[_Column]) -> list[dict[str, int | float | None]]:
    """Quantiles of numbers, interpolated, over a repeatable sample of ``SAMPLE`` rows
    (all rows when there are fewer): a quarter of a t-digest's time, and bounded memory."""
    if not columns:
        return []
    points = "[" + ", ".join(str(q) for q in QUANTILES.values()) + "]"
    expressions = ", ".join(f"quantile_cont({column.number}, {points})" for column in columns)
    projection = ", ".join(column.quoted for column in columns)
    sample = f"SELECT {projection} FROM {_VIEW} USING SAMPLE reservoir({SAMPLE} ROWS) REPEATABLE (7)"
    found = con.execute(f"SELECT {expressions} FROM ({sample})").fetchone()
    return [
        {name: _number(v) for name, v in zip(QUANTILES, values or [None] * len(QUANTILES), strict=True)}
        for values in found
    ]


def _histogram(
    con: Any, column: _Column, stats: dict[str, Any], baseline: dict[str, Any] | None
) -> dict[str, Any]:
    """Counts on equal-width bins: this data's own, or the baseline's edges."""
    if baseline and len(baseline.get("edges", [])) >= 2:
        edges = [float(edge) for edge in baseline["edges"]]
    elif stats["min"] == stats["max"]:
        edges = [float(stats["min"]), float(stats["max"])]
    else:
        low, high = float(stats["min"]), float(stats["max"])
        edges = [low + (high - low) * i / BINS for i in range(BINS)] + [high]
    bins, low, high = len(edges) - 1, edges[0], edges[-1]
    width = (high - low) / bins
    value = column.number
    position = f"floor(({value} - $low) / $width)" if width > 0 else "0"
    bucket = f"CASE WHEN {value} IS NOT NULL THEN greatest(0, least({bins - 1}, {position}))::INTEGER END"
    query = f"SELECT histogram({bucket}), count_if({value} < $low), count_if({value} > $high) FROM {_VIEW}"
    parameters = {"low": low, "high": high, **({"width": width} if width > 0 else {})}
    found, below, above = con.execute(query, parameters).fetchone()
    counts = [int((found or {}).get(index, 0)) for index in range(bins)]
    return {"edges": edges, "counts": counts, "below": int(below), "above": int(above)}


def _top(con: Any, column: _Column, count: int, baseline: dict[str, Any] | None) -> dict[str, Any]:
    """The most frequent values and their counts (or the baseline's values, counted here)."""
    source = f"SELECT {column.quoted} AS value FROM {_VIEW} WHERE {column.quoted} IS NOT NULL"
    if baseline and baseline.get("values"):
        wanted = list(baseline["values"])
        query = f"SELECT value, count(*) FROM ({source}) WHERE list_contains($wanted, value) GROUP BY value"
        found = dict(con.execute(query, {"wanted": wanted}).fetchall())
        values, counts = wanted, [int(found.get(value, 0)) for value in wanted]
    else:
        query = (
            f"SELECT value, count(*) AS n FROM ({source}) GROUP BY value ORDER BY n DESC, value LIMIT {TOP}"
        )
        pairs = con.execute(query).fetchall()
        values, counts = [_plain(value) for value, _ in pairs], [int(n) for _, n in pairs]
    return {"values": values, "counts": counts, "other": count - sum(counts)}


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | bool | int | float) or value is None else str(value)


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (None if value is None else str(value))


# -- comparing ---------------------------------------------------------------------------------


def compare_profiles(reference: dict[str, Any], current: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column both profiles bin: ``{"psi": …, "aligned": bool}`` (PSI of current against
    reference; ``aligned`` is False when the bins had to be matched approximately)."""
    found: dict[str, dict[str, Any]] = {}
    others = {column["name"]: column for column in current.get("columns", [])}
    for column in reference.get("columns", []):
        other = others.get(column["name"])
        if other is None or other.get("kind") != column.get("kind"):
            continue
        if column.get("histogram") and other.get("histogram"):
            expected = [float(c) for c in column["histogram"]["counts"]]
            actual, aligned = _rebinned(other["histogram"], column["histogram"]["edges"])
        elif column.get("top") and other.get("top"):
            expected, actual, aligned = _on_categories(column["top"], other["top"])
        else:
            continue
        found[column["name"]] = {"psi": _psi(expected, actual), "aligned": aligned}
    return found


def _rebinned(histogram: dict[str, Any], edges: list[float]) -> tuple[list[float], bool]:
    """``histogram``'s counts on ``edges`` (end bins open), spreading each bin evenly."""
    if list(histogram["edges"]) == list(edges):
        return [float(c) for c in histogram["counts"]], True
    own, counts = histogram["edges"], histogram["counts"]

    def below(x: float) -> float:  # how many values are under x
        total = 0.0
        for low, high, n in zip(own, own[1:], counts, strict=False):
            if x >= high:
                total += n
            elif x > low:
                total += n * (x - low) / (high - low)
        return total

    cumulative = [0.0] + [below(edge) for edge in edges[1:-1]] + [float(sum(counts))]
    return [b - a for a, b in itertools.pairwise(cumulative)], False


def _on_categories(
    reference: dict[str, Any], current: dict[str, Any]
) -> tuple[list[float], list[float], bool]:
    counts = dict(zip(current["values"], current["counts"], strict=True))
    total = float(sum(current["counts"]) + current.get("other", 0))
    actual = [float(counts.get(value, 0)) for value in reference["values"]]
    aligned = list(current["values"]) == list(reference["values"]) or not current.get("other")
    expected = [float(c) for c in reference["counts"]] + [float(reference.get("other", 0))]
    return expected, [*actual, total - sum(actual)], aligned


def _psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index, with empty bins floored at 0.01% so it stays finite."""
    e_total, a_total = sum(expected) or 1.0, sum(actual) or 1.0
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        p, q = max(e / e_total, 1e-4), max(a / a_total, 1e-4)
        psi += (q - p) * math.log(q / p)
    return psi


# -- a table for people ------------------------------------------------------------------------


def profile_rows(profile: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per column, in the order of :data:`PROFILE_COLUMNS`, for a CLI table."""
    return [
        (
            str(column["name"]),
            str(column.get("type", "")),
            *(_text(column.get(key)) for key in ("count", "nulls", "distinct", "min", "max", "mean", "std")),
            _top_text(column.get("top")),
        )
        for column in profile.get("columns", [])
    ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _top_text(top: dict[str, Any] | None, shown: int = 3) -> str:
    if not top or not top.get("values"):
        return ""
    pairs = list(zip(top["values"], top["counts"], strict=True))
    text = ", ".join(f"{_text(value)} ({count})" for value, count in pairs[:shown])
    return text + (", …" if len(pairs) > shown or top.get("other") else "")
