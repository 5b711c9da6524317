"""Mini-batches: files of a folder, row ranges of Parquet (in place) and of other tables (Arrow)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from keel.endpoints.batch.inputs import InputData
from keel.endpoints.batch.planning import plan
from keel.endpoints.batch.worker import RowReader
from keel.errors import InvalidInput
from tests.endpoints.batch.conftest import Models, write, write_parquet


def _input(path: Path, kind: str) -> InputData:
    return InputData(path, kind, str(path), None)


def test_a_folder_is_split_by_files_in_order_leaving_out_hidden_ones(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    for name in ("b.png", "a.png", "sub/c.png", "_SUCCESS", ".hidden", "_tmp/d.png"):
        write(folder / name, "x")
    found = plan(_input(folder, "uri_folder"), 2, tmp_path / "scratch")
    assert found.mode == "files" and found.unit == "files"
    assert [[Path(f).relative_to(folder).as_posix() for f in b.files] for b in found.batches] == [
        ["a.png", "b.png"],
        ["sub/c.png"],
    ]
    assert [b.items for b in found.batches] == [2, 1] and found.total_items == 3
    assert found.batches[0].describe().endswith("a.png and 1 more")
    assert len(plan(_input(folder, "uri_folder"), None, tmp_path / "scratch").batches) == 1  # 10 files


def test_an_empty_folder_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty" / "_logs").mkdir(parents=True)
    write(tmp_path / "empty" / ".keep", "")
    with pytest.raises(InvalidInput, match=r"the input folder .*empty holds no files to score"):
        plan(_input(tmp_path / "empty", "uri_folder"), None, tmp_path / "scratch")


def test_parquet_is_split_by_rows_and_read_by_row_groups(tmp_path: Path, models: Models) -> None:
    path = write_parquet(tmp_path / "rows.parquet", models.frame, row_group_size=300)
    found = plan(_input(path, "uri_file"), 700, tmp_path / "scratch")
    assert found.mode == "rows" and found.schema.names == list(models.frame.columns)
    assert [(b.start, b.stop) for b in found.batches] == [(0, 700), (700, 1400), (1400, 2000)]
    assert [b.group for b in found.batches] == [0, 2, 4]  # the row group each range starts in
    assert {b.source for b in found.batches} == {str(path)}
    reader = RowReader()
    pieces = [reader.rows(b.source or "", b.start, b.stop).to_pandas() for b in found.batches]
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), models.frame)
    assert (
        reader.rows(str(path), 250, 260).to_pandas().equals(models.frame.iloc[250:260].reset_index(drop=True))
    )
    assert not (tmp_path / "scratch").exists()  # Parquet is read where it is


def test_csv_and_mltable_become_one_arrow_file_that_workers_slice(tmp_path: Path, models: Models) -> None:
    csv = tmp_path / "rows.csv"
    models.frame.to_csv(csv, index=False)
    found = plan(_input(csv, "uri_file"), 1500, tmp_path / "scratch")
    assert [b.items for b in found.batches] == [1500, 500]
    arrow = found.batches[0].source or ""
    assert arrow.endswith("input.arrow") and Path(arrow).parent == tmp_path / "scratch"
    back = RowReader().rows(arrow, 1500, 2000).to_pandas()
    pd.testing.assert_frame_equal(back, models.frame.iloc[1500:].reset_index(drop=True), check_exact=False)
    table = tmp_path / "table"
    models.frame.to_csv(write(table / "data" / "part.csv", "").parent / "part.csv", index=False)
    write(table / "MLTable", "paths:\n  - pattern: ./data/*.csv\ntransformations:\n  - read_delimited: {}\n")
    tabular = plan(_input(table, "mltable"), None, tmp_path / "scratch2")
    assert tabular.mode == "rows" and [b.items for b in tabular.batches] == [2000]  # 100,000 by default


def test_a_table_without_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": pa.array([], pa.float64())}), path)
    with pytest.raises(InvalidInput, match="holds no rows to score"):
        plan(_input(path, "uri_file"), None, tmp_path / "scratch")


def test_any_other_file_is_one_mini_batch_of_one_file(tmp_path: Path) -> None:
    image = write(tmp_path / "cat.png", "not really")
    found = plan(_input(image, "uri_file"), 5, tmp_path / "scratch")
    assert found.mode == "files" and [b.files for b in found.batches] == [(str(image),)]
