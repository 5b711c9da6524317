"""Profiles of real files, checked against pandas and numpy; baselines, comparison, a big file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.locations import Location
from keel.data.profiles import (
    BINS,
    FORMAT,
    PROFILE_COLUMNS,
    compare_profiles,
    profile_of,
    profile_rows,
    profile_table,
)
from keel.errors import InvalidInput


def local(path: Path) -> Location:
    return Location(fsspec.filesystem("file"), str(path), str(path))


def columns(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {column["name"]: column for column in profile["columns"]}


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 5000
    delay = rng.normal(10, 4, n)
    delay[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "delay": delay,
            "seats": rng.integers(50, 300, n),
            "carrier": pd.array(rng.choice(["UA", "AA", "DL", "WN", None], n, p=[0.4, 0.3, 0.2, 0.08, 0.02])),
            "on_time": rng.random(n) < 0.8,
            "day": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 31, n), unit="D"),
            "tags": [["a"]] * n,
        }
    )


def test_a_parquet_profile_matches_pandas(tmp_path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "flights.parquet")
    profile = profile_of(local(tmp_path / "flights.parquet"), "uri_file")
    assert profile is not None and profile["format"] == FORMAT and profile["rows"] == len(frame)
    assert json.loads(json.dumps(profile)) == profile  # plain JSON
    found = columns(profile)
    delay = found["delay"]
    assert (delay["kind"], delay["type"]) == ("numeric", "DOUBLE")
    assert delay["count"] == frame.delay.count() and delay["nulls"] == frame.delay.isna().sum()
    assert delay["min"] == frame.delay.min() and delay["max"] == frame.delay.max()
    assert delay["mean"] == pytest.approx(frame.delay.mean()) and delay["std"] == pytest.approx(
        frame.delay.std()
    )
    expected = np.quantile(frame.delay.dropna(), [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    assert list(delay["quantiles"].values()) == pytest.approx(list(expected))  # exact below the sample size
    counts, edges = np.histogram(frame.delay.dropna(), bins=BINS)
    assert delay["histogram"]["edges"] == pytest.approx(list(edges))
    assert delay["histogram"]["counts"] == list(counts)
    assert delay["distinct"] == pytest.approx(frame.delay.nunique(), rel=0.05)
    seats = found["seats"]
    assert (seats["kind"], seats["min"], seats["max"]) == ("numeric", frame.seats.min(), frame.seats.max())
    assert isinstance(seats["min"], int) and seats["distinct"] == pytest.approx(
        frame.seats.nunique(), rel=0.05
    )


def test_categories_dates_and_other_types(tmp_path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "flights.parquet")
    found = columns(profile_of(local(tmp_path / "flights.parquet"), "uri_file") or {})
    carrier = found["carrier"]
    counts = frame.carrier.value_counts()
    assert carrier["kind"] == "categorical" and carrier["nulls"] == frame.carrier.isna().sum()
    assert carrier["top"] == {"values": list(counts.index), "counts": list(counts.values), "other": 0}
    assert carrier["distinct"] == 4
    on_time = found["on_time"]["top"]
    assert on_time["values"] == [True, False] and on_time["counts"] == [
        frame.on_time.sum(),
        (~frame.on_time).sum(),
    ]
    day = found["day"]
    assert day["kind"] == "temporal" and day["min"] == frame.day.min().isoformat()
    assert found["tags"] == {
        "name": "tags",
        "type": "VARCHAR[]",
        "kind": "other",
        "count": len(frame),
        "nulls": 0,
    }


def test_top_categories_keep_twenty_and_count_the_rest(tmp_path: Path) -> None:
    values = [f"v{i:02d}" for i in range(30) for _ in range(30 - i)]
    pq.write_table(pa.table({"v": values}), tmp_path / "many.parquet")
    top = columns(profile_of(local(tmp_path / "many.parquet"), "uri_file") or {})["v"]["top"]
    assert top["values"] == [f"v{i:02d}" for i in range(20)]
    assert top["counts"] == list(range(30, 10, -1)) and top["other"] == sum(range(1, 11))


def test_nan_and_infinity_are_not_statistics(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1.0, 3.0, float("nan"), float("inf"), None]}), tmp_path / "odd.parquet")
    x = columns(profile_of(local(tmp_path / "odd.parquet"), "uri_file") or {})["x"]
    assert (x["count"], x["nulls"], x["min"], x["max"], x["mean"]) == (3, 2, 1.0, 3.0, 2.0)
    assert sum(x["histogram"]["counts"]) == 2


def test_csv_folders_json_lines_and_mltables_profile_too(tmp_path: Path) -> None:
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "jan.csv").write_text("carrier,delay\nUA,12\nAA,-3\n")
    (tmp_path / "csv" / "feb.csv").write_text("carrier,delay\nDL,5\n")
    (tmp_path / "csv" / "_SUCCESS").write_text("")
    csv = profile_of(local(tmp_path / "csv"), "uri_folder") or {}
    assert (csv["source"], csv["rows"], columns(csv)["delay"]["mean"]) == ("csv", 3, pytest.approx(14 / 3))
    (tmp_path / "events.jsonl").write_text('{"a": 1}\n{"a": 2, "b": "x"}\n')
    events = profile_of(local(tmp_path / "events.jsonl"), "uri_file") or {}
    assert (events["source"], columns(events)["b"]["nulls"]) == ("json", 1)
    (tmp_path / "csv" / "MLTable").write_text(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited: {}\n  - take: 2\n"
    )
    table = profile_of(local(tmp_path / "csv"), "mltable") or {}
    assert (table["source"], table["rows"]) == ("mltable", 2)


def test_files_on_other_filesystems_stream_through_arrow() -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe("/profiles/a.csv", b"k,v\n1,x\n2,y\n")
    memory.pipe("/profiles/b.csv", b"k,v\n3,x\n")
    try:
        remote = Location(memory, "/profiles", "memory://profiles", datastore="mem", relative="")
        profile = profile_of(remote, "uri_folder") or {}
        assert (profile["source"], profile["rows"], columns(profile)["k"]["max"]) == ("csv", 3, 3)
        assert columns(profile)["v"]["top"] == {"values": ["x", "y"], "counts": [2, 1], "other": 0}
    finally:
        memory.rm("/profiles", recursive=True)


def test_data_that_is_not_a_table_has_no_profile(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "cat.jpg").write_bytes(b"\xff\xd8")
    assert profile_of(local(tmp_path / "images"), "uri_folder") is None
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text("a\n1\n")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "mixed" / "b.parquet")
    assert profile_of(local(tmp_path / "mixed"), "uri_folder") is None
    assert profile_of(local(tmp_path / "mixed" / "a.csv"), "mlflow_model") is None
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match=r"cannot profile .*bad\.parquet"):
        profile_of(local(tmp_path / "bad.parquet"), "uri_file")


def test_a_baseline_lines_profiles_up_for_cheap_comparison() -> None:
    rng = np.random.default_rng(1)
    reference = profile_table(pa.table({"x": rng.normal(0, 1, 20000), "c": rng.choice(["a", "b"], 20000)}))
    same = pa.table({"x": rng.normal(0, 1, 20000), "c": rng.choice(["a", "b"], 20000)})
    shifted = pa.table(
        {"x": rng.normal(1.5, 1, 20000), "c": rng.choice(["a", "b", "z"], 20000, p=[0.2, 0.2, 0.6])}
    )
    steady = profile_table(same, baseline=reference)
    drifted = profile_table(shifted, baseline=reference)
    x, c = columns(drifted)["x"], columns(drifted)["c"]
    assert x["histogram"]["edges"] == columns(reference)["x"]["histogram"]["edges"]
    assert sum(x["histogram"]["counts"]) == 20000 and x["histogram"]["above"] > 0
    assert c["top"]["values"] == columns(reference)["c"]["top"]["values"] and c["top"]["other"] > 10000
    calm, moved = compare_profiles(reference, steady), compare_profiles(reference, drifted)
    assert calm["x"]["aligned"] and calm["x"]["psi"] < 0.05 and calm["c"]["psi"] < 0.01
    assert moved["x"]["psi"] > 1 and moved["c"]["psi"] > 1
    independent = compare_profiles(reference, profile_table(same))
    assert not independent["x"]["aligned"] and independent["x"]["psi"] < 0.05  # re-binned, still calm


def test_profile_rows_fill_the_cli_table(tmp_path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "flights.parquet")
    rows = profile_rows(profile_of(local(tmp_path / "flights.parquet"), "uri_file") or {})
    assert all(len(row) == len(PROFILE_COLUMNS) and all(isinstance(v, str) for v in row) for row in rows)
    by_name = {row[0]: row for row in rows}
    assert by_name["carrier"][-1].startswith("UA (") and by_name["delay"][2] == str(frame.delay.count())


@pytest.mark.slow
def test_millions_of_rows_profile_in_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 3_000_000
    table = pa.table(
        {
            "id": np.arange(n),
            "x": rng.normal(10, 3, n),
            "y": rng.exponential(2, n),
            "carrier": pa.array(
                np.array(["UA", "AA", "DL", "WN"])[rng.integers(0, 4, n)]
            ).dictionary_encode(),
            "flag": rng.random(n) < 0.3,
        }
    )
    pq.write_table(table, tmp_path / "big.parquet")
    started = time.perf_counter()
    profile = profile_of(local(tmp_path / "big.parquet"), "uri_file") or {}
    elapsed = time.perf_counter() - started
    print(f"profiled {n:,} rows x 5 columns in {elapsed:.2f} s")
    assert profile["rows"] == n and columns(profile)["x"]["quantiles"]["p50"] == pytest.approx(10, abs=0.05)
    assert elapsed < 60  # a generous bound; about 1.5 s on two cores
