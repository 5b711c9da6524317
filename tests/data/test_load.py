"""``keel.data.load``: files, folders, MLTables, datastore URIs, fsspec URLs and data assets."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.assets import Request, register
from keel.data.loading import load
from keel.errors import InvalidInput, NotFound
from keel.workspace import Workspace

FLIGHTS = [{"carrier": "UA", "delay": 12}, {"carrier": "AA", "delay": -3}, {"carrier": "DL", "delay": 5}]


@pytest.fixture
def monthly(tmp_path: Path) -> Path:
    folder = tmp_path / "monthly"
    folder.mkdir()
    (folder / "jan.csv").write_text("carrier,delay\nUA,12\nAA,-3\n")
    (folder / "feb.csv").write_text("carrier,delay\nDL,5\n")
    return folder


def sorted_rows(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: str(row["carrier"]))


def test_local_files_and_folders_of_each_format(tmp_path: Path, monthly: Path) -> None:
    assert sorted_rows(load(monthly)) == sorted_rows(pa.Table.from_pylist(FLIGHTS))
    assert load(str(monthly / "jan.csv")).num_rows == 2
    pq.write_table(pa.Table.from_pylist(FLIGHTS), tmp_path / "flights.parquet")
    assert load(tmp_path / "flights.parquet").to_pylist() == FLIGHTS
    (tmp_path / "flights.jsonl").write_text('{"carrier": "UA", "delay": 12}\n')
    assert load(f"file://{tmp_path / 'flights.jsonl'}").to_pylist() == FLIGHTS[:1]


def test_an_mltable_folder_reads_as_its_file_says(monthly: Path) -> None:
    (monthly / "MLTable").write_text(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited: {}\n  - keep_columns: delay\n"
    )
    table = load(monthly)
    assert table.column_names == ["delay"] and sorted(table.column("delay").to_pylist()) == [-3, 5, 12]
    assert load(monthly / "MLTable").num_rows == 3  # the file itself names the same table


def test_a_local_path_needs_no_workspace(
    tmp_path: Path, monthly: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEEL_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    load(monthly)
    assert not (tmp_path / ".keel").exists()


def test_fsspec_urls_read_through_their_filesystem() -> None:
    memory = fsspec.filesystem("memory")
    with memory.open("/load-test/flights.parquet", "wb") as handle:
        pq.write_table(pa.Table.from_pylist(FLIGHTS), handle)
    try:
        assert load("memory://load-test/flights.parquet").to_pylist() == FLIGHTS
        assert load("memory://load-test/").num_rows == 3
    finally:
        memory.rm("/load-test", recursive=True)


def test_datastore_uris_and_data_assets(workspace: Workspace, monthly: Path) -> None:
    workspace.artifacts.put_folder(monthly, "landing/monthly")
    uri = "azureml://datastores/workspaceblobstore/paths/landing/monthly"
    assert load(uri, workspace=workspace).num_rows == 3
    register(workspace, Request("flights", str(monthly)))
    frame = load("azureml:flights:1", workspace=workspace).to_pandas()
    assert isinstance(frame, pd.DataFrame) and sorted(frame.carrier) == ["AA", "DL", "UA"]
    (monthly / "mar.csv").write_text("carrier,delay\nB6,1\n")
    register(workspace, Request("flights", str(monthly)))
    assert load("azureml:flights@latest", workspace=workspace).num_rows == 4
    assert load("azureml:flights:1", workspace=str(workspace.config.root)).num_rows == 3


def test_a_job_finds_its_workspace_from_the_environment(
    workspace: Workspace, monthly: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(workspace, Request("flights", str(monthly), type="uri_folder"))
    monkeypatch.setenv("KEEL_WORKSPACE", str(workspace.config.root))
    assert load("azureml:flights:1").num_rows == 3


def test_what_cannot_be_loaded_says_why(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\0")
    with pytest.raises(InvalidInput, match="is not tabular data"):
        load(tmp_path / "model")
    with pytest.raises(NotFound, match="no file or folder"):
        load(tmp_path / "missing.csv")
    with pytest.raises(NotFound, match="no data asset"):
        load("azureml:nothing:1", workspace=workspace)
