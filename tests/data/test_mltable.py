"""MLTable files read into Arrow: paths, every transformation, partitions, and located errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.locations import Location
from keel.data.mltable import read_mltable, read_table
from keel.data.tabular import find_tabular
from keel.errors import InvalidInput, NotFound
from keel.specs.source import SpecError
from keel.workspace import Workspace


def local(path: Path) -> Location:
    return Location(fsspec.filesystem("file"), str(path), str(path))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def read(folder: Path, mltable: str) -> Any:
    write(folder / "MLTable", mltable)
    return read_mltable(local(folder))


def rows(table: Any) -> list[dict[str, Any]]:
    return list(table.to_pylist())


@pytest.fixture
def flights(tmp_path: Path) -> Path:
    """Monthly CSV files in year/month folders, with the markers Spark leaves beside data."""
    folder = tmp_path / "flights"
    write(folder / "2024" / "01" / "jan.csv", "carrier,delay\nUA,12\nAA,-3\n")
    write(folder / "2024" / "02" / "feb.csv", "carrier,delay\nDL,5.5\n")
    write(folder / "2024" / "02" / "_SUCCESS", "")
    write(folder / "2024" / ".hidden.csv", "not,data\n")
    return folder


# -- paths --------------------------------------------------------------------------------------


def test_files_folders_and_patterns_are_read_once_each_in_order(flights: Path) -> None:
    table = read(
        flights,
        """
type: mltable
paths:
  - file: ./2024/02/feb.csv
  - folder: ./2024
  - pattern: ./*/01/*.csv
transformations:
  - read_delimited:
      include_path_column: true
""",
    )
    assert rows(table.select(["carrier", "delay"])) == [
        {"carrier": "DL", "delay": 5.5},
        {"carrier": "UA", "delay": 12.0},
        {"carrier": "AA", "delay": -3.0},
    ]
    assert table.column("Path").to_pylist() == [
        str(flights / "2024/02/feb.csv"),
        str(flights / "2024/01/jan.csv"),
        str(flights / "2024/01/jan.csv"),
    ]


def test_without_a_read_transformation_the_table_lists_the_files(flights: Path) -> None:
    table = read(
        flights,
        """
paths:
  - pattern: ./**/*.csv
transformations:
  - extract_columns_from_partition_format: "{year}/{month}"
""",
    )
    assert rows(table) == [
        {"Path": str(flights / "2024/01/jan.csv"), "year": "2024", "month": "01"},
        {"Path": str(flights / "2024/02/feb.csv"), "year": "2024", "month": "02"},
    ]


def test_paths_may_name_the_workspace_datastore(workspace: Workspace, tmp_path: Path) -> None:
    workspace.artifacts.write_bytes("landing/jan.csv", b"carrier,delay\nUA,1\n")
    folder = tmp_path / "table"
    write(
        folder / "MLTable",
        """
paths:
  - file: azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/workspaceblobstore/paths/landing/jan.csv
  - pattern: azureml://datastores/workspaceblobstore/paths/landing/*.csv
transformations:
  - read_delimited: {include_path_column: true}
""",
    )
    table = read_mltable(local(folder), workspace=workspace)
    assert table.column("Path").to_pylist() == [
        "azureml://datastores/workspaceblobstore/paths/landing/jan.csv"
    ]
    with pytest.raises(SpecError, match=r"MLTable:3: paths\[0\]\.file: .*needs a workspace"):
        read_mltable(local(folder))


def test_a_table_in_a_remote_store_reads_through_its_filesystem_and_stays_inside(tmp_path: Path) -> None:
    memory = fsspec.filesystem("memory")
    memory.pipe("/bucket/t/data/a.csv", b"x\n1\n2\n")
    memory.pipe("/bucket/t/MLTable", b"paths:\n  - folder: ./data\ntransformations:\n  - read_delimited\n")
    remote = Location(memory, "/bucket/t", "memory://bucket/t", datastore="mem", relative="t")
    assert read_mltable(remote).column("x").to_pylist() == [1, 2]
    memory.pipe("/bucket/t/MLTable", b"paths:\n  - file: ../secret.csv\n")
    with pytest.raises(SpecError, match=r"memory://bucket/t/MLTable:2: .*climbs out"):
        read_mltable(remote)
    memory.rm("/bucket", recursive=True)


# -- read_delimited ---------------------------------------------------------------------------


SAME = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.mark.parametrize(
    ("header", "second", "expected"),
    [
        ("all_files_same_headers", "A,B\n2,y\n", SAME),  # the first file names the columns
        ("from_first_file", "2,y\n", SAME),
        (
            "no_header",
            "A,B\n",
            [
                {"Column1": "a", "Column2": "b"},
                {"Column1": "1", "Column2": "x"},
                {"Column1": "A", "Column2": "B"},
            ],
        ),
        (
            "all_files_different_headers",
            "A,B\n2,y\n",
            [{"a": 1, "b": "x", "A": None, "B": None}, {"a": None, "b": None, "A": 2, "B": "y"}],
        ),
    ],
)
def test_every_header_mode(tmp_path: Path, header: str, second: str, expected: list[dict[str, Any]]) -> None:
    write(tmp_path / "t" / "1.csv", "a,b\n1,x\n")
    write(tmp_path / "t" / "2.csv", second)
    mltable = f"paths:\n  - folder: ./\ntransformations:\n  - read_delimited: {{header: {header}}}\n"
    assert rows(read(tmp_path / "t", mltable)) == expected


def test_delimiter_encoding_and_empty_fields(tmp_path: Path) -> None:
    write(tmp_path / "t" / "latin.csv", "name;city;n\nJosé;;7\nAna;Óbidos;\n", encoding="latin-1")
    base = "paths:\n  - file: ./latin.csv\ntransformations:\n  - read_delimited:\n"
    options = "      delimiter: ';'\n      encoding: latin1\n"
    expected = [{"name": "José", "city": None, "n": 7}, {"name": "Ana", "city": "Óbidos", "n": None}]
    assert rows(read(tmp_path / "t", base + options)) == expected
    kept = rows(read(tmp_path / "t", base + options + "      empty_as_string: true\n"))
    assert kept == [{"name": "José", "city": "", "n": 7}, {"name": "Ana", "city": "Óbidos", "n": None}]
    write(tmp_path / "t" / "latin.csv", "\ufeffname;city;n\nNA;x;7\n")
    utf8bom = options.replace("latin1", "utf8bom")
    assert rows(read(tmp_path / "t", base + utf8bom)) == [{"name": "NA", "city": "x", "n": 7}]  # NA is text


def test_types_can_stay_text_and_quoted_lines_can_break(tmp_path: Path) -> None:
    write(tmp_path / "t" / "broken.csv", "id,note\n1,x,extra\n")
    with pytest.raises(InvalidInput, match=r"broken\.csv: cannot read it as delimited text"):
        read(tmp_path / "t", "paths:\n  - file: ./broken.csv\ntransformations:\n  - read_delimited\n")
    write(tmp_path / "t" / "ids.csv", 'id,note\n007,"two\nlines"\n')
    base = "paths:\n  - file: ./ids.csv\ntransformations:\n  - read_delimited:\n"
    options = "      infer_column_types: false\n      support_multi_line: true\n"
    assert rows(read(tmp_path / "t", base + options)) == [{"id": "007", "note": "two\nlines"}]


# -- read_parquet and read_json_lines -------------------------------------------------------


def test_parquet_files_stack_and_widen_types(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    pq.write_table(pa.table({"n": [1, 2]}), tmp_path / "t" / "a.parquet")
    pq.write_table(pa.table({"n": [0.5], "label": ["x"]}), tmp_path / "t" / "b.parquet")
    table = read(
        tmp_path / "t",
        "paths:\n  - pattern: ./*.parquet\n"
        "transformations:\n  - read_parquet:\n      include_path_column: true\n",
    )
    assert table.schema.field("n").type == pa.float64()
    assert rows(table.select(["n", "label"])) == [
        {"n": 1.0, "label": None},
        {"n": 2.0, "label": None},
        {"n": 0.5, "label": "x"},
    ]
    assert table.column("Path").to_pylist()[-1] == str(tmp_path / "t" / "b.parquet")


def test_json_lines_with_invalid_lines_dropped_or_refused(tmp_path: Path) -> None:
    lines = [json.dumps({"a": 1, "b": "é"}), "{not json", json.dumps({"a": 2})]
    write(tmp_path / "t" / "orders.jsonl", "\n".join(lines) + "\n", encoding="windows-1252")
    base = "paths:\n  - file: ./orders.jsonl\ntransformations:\n"
    base += "  - read_json_lines:\n      encoding: windows1252\n"
    assert rows(read(tmp_path / "t", base + "      invalid_lines: drop\n")) == [
        {"a": 1, "b": "é"},
        {"a": 2, "b": None},
    ]
    with pytest.raises(InvalidInput, match=r"orders\.jsonl: cannot read it as JSON lines"):
        read(tmp_path / "t", base)


# -- the other transformations -----------------------------------------------------------------


@pytest.fixture
def numbers(tmp_path: Path) -> Path:
    folder = tmp_path / "numbers"
    write(
        folder / "n.csv",
        "i,label,flag\n" + "".join(f"{i},l{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(1000)),
    )
    return folder


def transformed(folder: Path, *steps: str) -> Any:
    text = "paths:\n  - file: ./n.csv\ntransformations:\n  - read_delimited: {}\n"
    return read(folder, text + "".join(f"  - {step}\n" for step in steps))


def test_take_skip_and_columns(numbers: Path) -> None:
    assert transformed(numbers, "skip: 10", "take: 3").column("i").to_pylist() == [10, 11, 12]
    assert transformed(numbers, "keep_columns: [flag, i]").column_names == ["i", "flag"]
    assert transformed(numbers, "drop_columns: label").column_names == ["i", "flag"]
    with pytest.raises(SpecError, match=r"MLTable:5: transformations\[1\]\.keep_columns: no column 'nope'"):
        transformed(numbers, "keep_columns: [i, nope]")


def test_a_random_sample_is_repeatable_with_a_seed(numbers: Path) -> None:
    first = transformed(numbers, "take_random_sample: {probability: 0.2, seed: 42}").column("i").to_pylist()
    again = transformed(numbers, "take_random_sample: {probability: 0.2, seed: 42}").column("i").to_pylist()
    other = transformed(numbers, "take_random_sample: {probability: 0.2, seed: 43}").column("i").to_pylist()
    assert first == again != other
    assert 120 < len(first) < 280 and first == sorted(first)
    assert transformed(numbers, "take_random_sample: {probability: 0}").num_rows == 0
    with pytest.raises(SpecError, match=r"probability: probability is a number from 0 to 1"):
        transformed(numbers, "take_random_sample: {probability: 1.5}")


def test_column_types_convert_like_azure(tmp_path: Path) -> None:
    write(
        tmp_path / "t" / "c.csv",
        "n,x,ok,day,stamp,code\n12,1.5,yes,01/02/2024,2024-01-02 03:04:05.250000,7\n"
        "x,bad,no,2024-03-04,,8\n,2e3,,31/12/2023,,9\n",
    )
    conversions = """
  - convert_column_types:
      - columns: [n, x]
        column_type: int
      - columns: code
        column_type: string
      - columns: ok
        column_type:
          boolean: {true_values: ["yes"], false_values: ["no"]}
      - columns: day
        column_type:
          datetime:
            formats: ["%d/%m/%Y", "%Y-%m-%d"]
      - columns: stamp
        column_type:
          datetime: {formats: ["%Y-%m-%d %H:%M:%S.%f"]}
"""
    table = read(
        tmp_path / "t",
        "paths:\n  - file: ./c.csv\ntransformations:\n  - read_delimited:\n      infer_column_types: false\n"
        + conversions,
    )
    assert rows(table) == [
        {
            "n": 12,
            "x": None,
            "ok": True,
            "day": dt.datetime(2024, 2, 1),
            "stamp": dt.datetime(2024, 1, 2, 3, 4, 5, 250000),
            "code": "7",
        },
        {"n": None, "x": None, "ok": False, "day": dt.datetime(2024, 3, 4), "stamp": None, "code": "8"},
        {"n": None, "x": None, "ok": None, "day": dt.datetime(2023, 12, 31), "stamp": None, "code": "9"},
    ]
    as_float = read(
        tmp_path / "t",
        "paths:\n  - file: ./c.csv\ntransformations:\n  - read_delimited: {infer_column_types: false}\n"
        "  - convert_column_types: [{columns: x, column_type: float}]\n",
    )
    assert as_float.column("x").to_pylist() == [1.5, None, 2000.0]


def test_booleans_outside_the_lists_are_refused_unless_mismatch_says(numbers: Path) -> None:
    lists = "{true_values: [l1], false_values: [l2]}"
    strict = f"convert_column_types: [{{columns: label, column_type: {{boolean: {lists}}}}}]"
    with pytest.raises(SpecError, match=r"column 'label': 'l0' is in neither true_values nor false_values"):
        transformed(numbers, strict)
    lenient = strict.replace("false_values: [l2]", "false_values: [l2], mismatch_as: 'false'")
    assert transformed(numbers, lenient, "take: 3").column("label").to_pylist() == [False, True, False]


def test_partitions_become_columns(flights: Path) -> None:
    read_them = "paths:\n  - folder: ./\ntransformations:\n  - read_delimited: {}\n"
    dated = read(flights, read_them + "  - extract_columns_from_partition_format: {when:yyyy/MM}\n")
    assert dated.column("when").to_pylist() == [dt.datetime(2024, 1, 1)] * 2 + [dt.datetime(2024, 2, 1)]
    named = read(
        flights, read_them + "  - extract_columns_from_partition_format: '/{year}/{month}/{file}.csv'\n"
    )
    assert rows(named.select(["year", "month", "file"]))[-1] == {"year": "2024", "month": "02", "file": "feb"}
    sdk_form = read(
        flights, read_them + "  - extract_columns_from_partition_format: {partition_format: '{y}/{m}'}\n"
    )
    assert sdk_form.column("m").to_pylist() == ["01", "01", "02"]


def test_hive_style_partition_folders(tmp_path: Path) -> None:
    for year, month in [(2015, 1), (2015, 12)]:
        folder = tmp_path / "green" / f"puYear={year}" / f"puMonth={month}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"trip": [1.0]}), folder / "part-0.parquet")
        write(folder / "_committed_123", "")
    table = read(
        tmp_path / "green",
        "paths:\n  - pattern: ./puYear=*/puMonth=*/*.parquet\ntransformations:\n  - read_parquet\n"
        "  - extract_columns_from_partition_format: '/puYear={year}/puMonth={month}'\n",
    )
    assert rows(table) == [
        {"trip": 1.0, "year": "2015", "month": "1"},
        {"trip": 1.0, "year": "2015", "month": "12"},
    ]


def test_plain_files_read_as_the_mltable_they_imply(tmp_path: Path) -> None:
    write(tmp_path / "tsv" / "a.tsv", "k\tv\n1\tx\n")
    write(tmp_path / "tsv" / "README.md", "not data")
    table = find_tabular(local(tmp_path / "tsv"))
    assert table is not None and table.kind == "tsv"
    assert rows(read_table(table)) == [{"k": 1, "v": "x"}]


# -- malformed files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paths:\n  - file: ./a.csv\nschema: x\n", r"MLTable:3: schema: unknown key 'schema'"),
        ("paths:\n  - file: ./a.csv\n   bad: [\n", r"MLTable:3: not valid YAML"),
        ("paths:\n  - url: ./a.csv\n", r"MLTable:2: paths\[0\]\.url: unknown path kind 'url'"),
        ("paths: []\n", r"MLTable:1: paths: give paths"),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - take: 1\n  - read_parquet\n",
            r"MLTable:5: .*must be the first",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - filter: 'col(\"a\") > 1'\n",
            r"MLTable:4: .*filter is not supported",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delta_lake: {version_as_of: 1}\n",
            r"MLTable:4: .*read_delta_lake",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - pivot: {}\n",
            r"MLTable:4: .*unknown transformation 'pivot'",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited:\n      header: yes_please\n",
            r"MLTable:5: .*header: 'yes_please' is not one of",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited:\n      delimiter: '||'\n",
            r"MLTable:5: .*exactly one character",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited:\n      quote: '\"'\n",
            r"MLTable:5: .*unknown option 'quote'",
        ),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited\n  - take: -1\n",
            r"MLTable:5: .*take takes a row count",
        ),
        ("paths:\n  - file: ./nope.csv\n", r"MLTable:2: paths\[0\]\.file: no file at"),
        ("paths:\n  - pattern: ./*.parquet\n", r"MLTable:2: .*matches no files"),
        (
            "paths:\n  - file: ./a.csv\ntransformations:\n  - read_delimited\n"
            "  - extract_columns_from_partition_format: 'year={y}/{f}.csv'\n",
            r"MLTable:5: .*does not match the partition format",
        ),
        ("type: table\npaths:\n  - file: ./a.csv\n", r"MLTable:1: type: type must be mltable"),
    ],
)
def test_a_malformed_mltable_names_its_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "t" / "a.csv", "a\n1\n")
    with pytest.raises(SpecError, match=message):
        read(tmp_path / "t", text)


def test_a_folder_without_an_mltable_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="no MLTable file"):
        read_mltable(local(tmp_path / "empty"))
