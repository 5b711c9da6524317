"""The Open Inference Protocol (KServe V2) inference request and response, JSON and binary.

Tabular models take their columns as named 1-D inputs (``shape [N]`` or ``[N, 1]``)
or one 2-D input (``[N, F]``) whose columns follow the model's signature. The
binary tensor extension that Triton's clients use by default is read and written:
the JSON header's length travels in ``Inference-Header-Content-Length`` and each
tensor's bytes follow it in order (``parameters.binary_data_size``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.endpoints.online.tables import BadRequest, Rows, json_bytes, load_json

DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_LENGTH = struct.Struct("<I")


@dataclass
class InferRequest:
    """What an infer call asked for, besides its data."""

    rows: Rows
    id: str | None = None
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False
    requested: list[str] | None = None


def parse_infer(body: bytes, header_length: int | None, signature_columns: list[str] | None) -> InferRequest:
    """An infer request (JSON, or JSON header plus binary tensors) as rows for the model."""
    header_bytes = body if header_length is None else body[:header_length]
    if header_length is not None and header_length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length}, longer than the {len(body)}-byte body"
        )
    document = load_json(header_bytes)
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("inputs"), list)
        or not document["inputs"]
    ):
        raise BadRequest('expected {"inputs": [{"name", "shape", "datatype", "data"}, …]}')
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    columns: list[tuple[str, np.ndarray[Any, Any]]] = []
    offset = 0
    for number, tensor in enumerate(document["inputs"]):
        values, offset = _tensor(tensor, number, binary, offset)
        columns.append((tensor["name"], values))
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data follow the tensors; expected none")
    request = InferRequest(rows=_rows(columns, signature_columns), id=_text(document.get("id")))
    _outputs(document, request)
    return request


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _tensor(tensor: Any, number: int, binary: memoryview, offset: int) -> tuple[np.ndarray[Any, Any], int]:
    where = f"inputs[{number}]"
    if not isinstance(tensor, dict):
        raise BadRequest(f"{where}: expected an object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype"):
        if key not in tensor:
            raise BadRequest(f"{where}: {key!r} is required")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name: expected a non-empty string")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest(f"{where}.shape: expected a list of non-negative integers")
    if datatype not in DATATYPES:
        raise BadRequest(f"{where}.datatype: {datatype!r} is not one of {', '.join(DATATYPES)}")
    if len(shape) not in (1, 2):
        raise BadRequest(f"{where}.shape: a tabular model takes [rows] or [rows, columns], not {shape}")
    count = int(np.prod(shape)) if shape else 1
    size = _binary_size(tensor, where)
    if size is not None:
        values = _from_binary(binary[offset : offset + size], datatype, count, where)
        return values.reshape(shape), offset + size
    if "data" not in tensor:
        raise BadRequest(f"{where}: 'data' is required (or parameters.binary_data_size with binary data)")
    return _from_json(tensor["data"], datatype, shape, count, where), offset


def _binary_size(tensor: dict[str, Any], where: str) -> int | None:
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}.parameters: expected an object")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or size < 0:
        raise BadRequest(f"{where}.parameters.binary_data_size: expected a non-negative integer")
    return size


def _from_binary(data: memoryview, datatype: str, count: int, where: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        items: list[Any] = []
        position = 0
        while position < len(data):
            if position + 4 > len(data):
                raise BadRequest(f"{where}: truncated BYTES element")
            (length,) = _LENGTH.unpack_from(data, position)
            items.append(bytes(data[position + 4 : position + 4 + length]).decode("utf-8", "replace"))
            position += 4 + length
        values = np.array(items, dtype=object)
    else:
        dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
        if len(data) % dtype.itemsize:
            raise BadRequest(f"{where}: {len(data)} bytes is not a whole number of {datatype} values")
        values = np.frombuffer(bytes(data), dtype=dtype)
    if values.size != count:
        raise BadRequest(f"{where}: the binary data holds {values.size} values; the shape says {count}")
    return values


def _from_json(data: Any, datatype: str, shape: list[int], count: int, where: str) -> np.ndarray[Any, Any]:
    flat = _flatten(data)
    if len(flat) != count:
        raise BadRequest(f"{where}: data has {len(flat)} values; shape {shape} needs {count}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadRequest(f"{where}: BYTES data must be strings")
        return np.array(flat, dtype=object).reshape(shape)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise BadRequest(f"{where}: BOOL data must be true or false")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise BadRequest(f"{where}: {datatype} data must be numbers")
    try:
        return np.array(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise BadRequest(f"{where}: the data does not fit {datatype} ({exc})") from None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [value for item in data for value in _flatten(item)]
    if any(isinstance(item, list) for item in data):
        raise BadRequest("data nests lists unevenly")
    return data


def _rows(columns: list[tuple[str, np.ndarray[Any, Any]]], signature: list[str] | None) -> Rows:
    if len(columns) == 1 and columns[0][1].ndim == 2:
        matrix = columns[0][1]
        names = signature if signature and len(signature) == matrix.shape[1] else None
        return Rows(names, matrix.tolist())
    lengths = set()
    series = []
    for name, values in columns:
        if values.ndim == 2 and values.shape[1] != 1:
            raise BadRequest(
                f"input {name!r} has shape {list(values.shape)}; a named column is [rows] or [rows, 1]"
            )
        series.append(values.reshape(-1).tolist())
        lengths.add(values.shape[0])
    if len(lengths) != 1:
        raise BadRequest(f"the inputs have different numbers of rows ({sorted(lengths)})")
    return Rows([name for name, _ in columns], [list(row) for row in zip(*series, strict=True)])


def _outputs(document: dict[str, Any], request: InferRequest) -> None:
    parameters = document.get("parameters") or {}
    if isinstance(parameters, dict):
        request.binary_default = bool(parameters.get("binary_data_output"))
    outputs = document.get("outputs")
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and "name" in o for o in outputs):
        raise BadRequest('outputs: expected a list of {"name": …}')
    request.requested = [str(o["name"]) for o in outputs]
    for output in outputs:
        if (output.get("parameters") or {}).get("binary_data"):
            request.binary_outputs.add(str(output["name"]))


def datatype_of(values: np.ndarray[Any, Any]) -> str:
    kind = values.dtype
    if kind == np.bool_:
        return "BOOL"
    for name, dtype in DATATYPES.items():
        if dtype is not np.object_ and kind == np.dtype(dtype):
            return name
    return "BYTES"


def infer_answer(
    outputs: dict[str, np.ndarray[Any, Any]], request: InferRequest, model: str, version: str
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    described = []
    blobs = []
    for name, values in outputs.items():
        if request.requested is not None and name not in request.requested:
            continue
        entry: dict[str, Any] = {"name": name, "datatype": datatype_of(values), "shape": list(values.shape)}
        if name in request.binary_outputs or (request.binary_default and request.requested is None):
            blob = _to_binary(values, entry["datatype"])
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = values.reshape(-1).tolist()
        described.append(entry)
    if request.requested is not None:
        missing = sorted(set(request.requested) - set(outputs))
        if missing:
            raise BadRequest(f"the model has no output {missing[0]!r} (outputs: {', '.join(outputs)})")
    document: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request.id is not None:
        document["id"] = request.id
    header = json_bytes(document)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _to_binary(values: np.ndarray[Any, Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for item in values.reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).tobytes()
