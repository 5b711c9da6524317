"""Request bodies in the three dialects, read into one small table form, and answers written back.

    Azure ML no-code   {"input_data": {"columns": [...], "index": [...], "data": [[...]]}}
                       (or a list of rows, a list of records, a mapping of columns)
    MLflow             {"dataframe_split": …} | {"dataframe_records": […]} | {"instances": […]}
                       | {"inputs": […] or {column: […]}}, or a CSV body
    Open Inference     {"inputs": [{"name", "shape", "datatype", "data"}…]}: one named 1-D
                       input per column, or one 2-D input whose columns are the model's inputs

A :class:`Rows` is row-major Python values plus column names (``None`` when the
request gave positions only). Rows from many requests concatenate, which is how
adaptive batching scores them with one call. Every malformed body raises
:class:`BadRequest` with a message that says what was expected.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import orjson

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class BadRequest(Exception):
    """A request body the model cannot be given; the message is safe to return to the client."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ScoringError(Exception):
    """The model or the scoring script failed on a request; the deployment keeps serving."""


@dataclass
class Rows:
    """A table: column names (or None for positional values) and its rows."""

    columns: list[str] | None
    rows: list[list[Any]]


def load_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc})") from None


# -- Azure ML ------------------------------------------------------------------------------


def azure_rows(body: bytes) -> Rows:
    document = load_json(body)
    if not isinstance(document, dict) or "input_data" not in document:
        raise BadRequest(
            'expected {"input_data": {"columns": [...], "data": [[...]]}} (Azure ML\'s MLflow model format)'
        )
    return _any_table(document["input_data"], "input_data")


def _any_table(value: Any, where: str) -> Rows:
    if isinstance(value, dict):
        if "data" in value:
            return _split(value, where)
        return _columnar(value, where)
    if isinstance(value, list):
        return _row_list(value, where)
    raise BadRequest(
        f"{where}: expected a table (split form, a list of rows or records, or columns), got a scalar"
    )


def _split(value: dict[str, Any], where: str) -> Rows:
    unknown = sorted(set(value) - {"columns", "data", "index"})
    if unknown:
        raise BadRequest(
            f"{where}: unexpected key {unknown[0]!r}; the split form has columns, index and data"
        )
    columns, data = value.get("columns"), value["data"]
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise BadRequest(f"{where}.columns: expected a list of column names")
    if not isinstance(data, list):
        raise BadRequest(f"{where}.data: expected a list of rows")
    rows = [row if isinstance(row, list) else [row] for row in data]
    if columns is not None:
        for number, row in enumerate(rows):
            if len(row) != len(columns):
                names = ", ".join(columns)
                raise BadRequest(
                    f"{where}.data[{number}] has {len(row)} values for {len(columns)} columns ({names})"
                )
    return Rows(columns, rows)


def _columnar(value: dict[str, Any], where: str) -> Rows:
    if not value:
        raise BadRequest(f"{where}: expected at least one column")
    columns = list(value)
    series = [value[name] if isinstance(value[name], list) else [value[name]] for name in columns]
    lengths = {len(values) for values in series}
    if len(lengths) != 1:
        raise BadRequest(f"{where}: the columns have different lengths ({sorted(lengths)})")
    return Rows(columns, [list(row) for row in zip(*series, strict=True)])


def _row_list(value: list[Any], where: str) -> Rows:
    if not value:
        return Rows(None, [])
    if all(isinstance(item, dict) for item in value):
        return _records(value, where)
    if all(isinstance(item, list) for item in value):
        widths = {len(item) for item in value}
        if len(widths) != 1:
            raise BadRequest(f"{where}: the rows have different lengths ({sorted(widths)})")
        return Rows(None, value)
    if any(isinstance(item, (dict, list)) for item in value):
        raise BadRequest(
            f"{where}: mixes rows of different kinds; give all lists, all records or all scalars"
        )
    return Rows(None, [[item] for item in value])


def _records(value: list[dict[str, Any]], where: str) -> Rows:
    columns = list(value[0])
    for number, record in enumerate(value):
        if list(record) != columns and set(record) != set(columns):
            raise BadRequest(f"{where}[{number}] has columns {sorted(record)}, not {sorted(columns)}")
    return Rows(columns, [[record[name] for name in columns] for record in value])


# -- MLflow --------------------------------------------------------------------------------


def mlflow_rows(body: bytes, *, csv_body: bool = False) -> Rows:
    if csv_body:
        return _csv_rows(body)
    document = load_json(body)
    if not isinstance(document, dict):
        raise BadRequest(f"expected a JSON object with one of the keys {', '.join(MLFLOW_KEYS)}")
    given = [key for key in MLFLOW_KEYS if key in document]
    unknown = sorted(set(document) - {*MLFLOW_KEYS, "params"})
    if len(given) != 1 or unknown:
        found = ", ".join(sorted(document)) or "none"
        raise BadRequest(
            f"expected exactly one of the keys {', '.join(MLFLOW_KEYS)} (and optionally params); got {found}"
        )
    key = given[0]
    value = document[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise BadRequest('dataframe_split: expected {"columns": [...], "data": [[...]]}')
        return _split(value, key)
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise BadRequest("dataframe_records: expected a list of records ({column: value})")
        return _records(value, key) if value else Rows(None, [])
    return _any_table(value, key)


def _csv_rows(body: bytes) -> Rows:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the CSV body is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    lines = [line for line in reader if line]
    if not lines:
        raise BadRequest("the CSV body is empty; expected a header line and rows")
    header, rows = lines[0], lines[1:]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise BadRequest(f"CSV line {number} has {len(row)} values for {len(header)} columns")
    return Rows(header, [[_number(cell) for cell in row] for row in rows])


def _number(cell: str) -> Any:
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            continue
    return cell


# -- answers -------------------------------------------------------------------------------


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def azure_answer(predictions: list[Any]) -> bytes:
    return json_bytes(predictions)


def mlflow_answer(predictions: list[Any]) -> bytes:
    return json_bytes({"predictions": predictions})
