"""Request bodies in Azure's, MLflow's and the Open Inference Protocol's dialects, and the frames between."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from keel.endpoints.online import frames, oip
from keel.endpoints.online.routing import Route, RouteError
from keel.endpoints.online.tables import BadRequest, Rows, azure_rows, mlflow_rows


def test_every_table_shape_reads_to_the_same_rows() -> None:
    want = Rows(["a", "b"], [[1, 2], [3, 4]])
    assert (
        azure_rows(b'{"input_data": {"columns": ["a", "b"], "index": [0, 1], "data": [[1, 2], [3, 4]]}}')
        == want
    )
    assert azure_rows(b'{"input_data": {"a": [1, 3], "b": [2, 4]}}') == want
    assert azure_rows(b'{"input_data": [{"a": 1, "b": 2}, {"b": 4, "a": 3}]}') == want
    assert mlflow_rows(b'{"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}') == want
    assert mlflow_rows(b'{"inputs": {"a": [1, 3], "b": [2, 4]}, "params": {}}') == want
    assert mlflow_rows(b'{"instances": [[1, 2], [3, 4]]}') == Rows(None, [[1, 2], [3, 4]])
    assert mlflow_rows(b"a,b\n1,2\n3,4\n", csv_body=True) == want


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"[1, 2", "not valid JSON"),
        (b'{"input": []}', "input_data"),
        (b'{"input_data": 3}', "scalar"),
        (b'{"input_data": {"columns": ["a"], "data": [[1, 2]]}}', "2 values for 1 columns"),
        (b'{"input_data": {"a": [1], "b": [1, 2]}}', "different lengths"),
        (b'{"input_data": [[1], [1, 2]]}', "different lengths"),
        (b'{"input_data": [1, [2]]}', "mixes rows"),
        (b'{"input_data": {"columns": "a", "data": []}}', "list of column names"),
    ],
)
def test_bad_azure_bodies_say_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        azure_rows(body)


def test_bad_mlflow_bodies_say_what_is_wrong() -> None:
    with pytest.raises(BadRequest, match="exactly one of the keys"):
        mlflow_rows(b'{"data": []}')
    with pytest.raises(BadRequest, match="dataframe_records: expected a list of records"):
        mlflow_rows(b'{"dataframe_records": [1, 2]}')
    with pytest.raises(BadRequest, match="CSV line 3"):
        mlflow_rows(b"a,b\n1,2\n3\n", csv_body=True)


def test_oip_binary_tensors_read_and_write() -> None:
    header = {
        "id": "7",
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
            {"name": "b", "shape": [2, 1], "datatype": "INT64", "data": [5, 6]},
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    text = json.dumps(header).encode()
    body = text + np.array([1.5, 2.5], dtype="<f4").tobytes()
    request = oip.parse_infer(body, len(text), None)
    assert request.rows == Rows(["a", "b"], [[1.5, 5], [2.5, 6]])
    answer, length = oip.infer_answer({"predict": np.array([1, 0])}, request, "flights", "blue")
    assert length is not None
    document = json.loads(answer[:length])
    assert document["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(answer[length:], dtype="<i8").tolist() == [1, 0]
    strings = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 3) + b"you"
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(strings)},
                }
            ]
        }
    )
    assert oip.parse_infer(head.encode() + strings, len(head), None).rows.rows == [["hi"], ["you"]]


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ([{"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2]}], "needs 3"),
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": ["x"]}], "must be numbers"),
        ([{"name": "a", "shape": [1], "datatype": "BOOL", "data": [1]}], "true or false"),
        ([{"name": "a", "shape": [1, 1, 1], "datatype": "FP64", "data": [1]}], "rows, columns"),
        (
            [
                {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]},
            ],
            "different numbers of rows",
        ),
        ([{"shape": [1], "datatype": "FP64", "data": [1]}], "'name' is required"),
        ([{"name": "a", "shape": [1], "datatype": "INT8", "data": [1000]}], "does not fit INT8"),
    ],
)
def test_bad_infer_requests_say_what_is_wrong(inputs: list[dict[str, object]], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        oip.parse_infer(json.dumps({"inputs": inputs}).encode(), None, None)


def test_frames_survive_being_split_anywhere() -> None:
    payload = frames.request_payload(frames.JSON, b"corr-1", b'{"x": 1}')
    stream = frames.frame(frames.SCORE, 41, payload) * 3
    buffer = frames.FrameBuffer()
    found = []
    for byte in range(len(stream)):
        buffer.feed(stream[byte : byte + 1])
        found.extend(buffer.frames())
    assert [(kind, number) for kind, number, _ in found] == [(frames.SCORE, 41)] * 3
    request = frames.parse_request(frames.SCORE, 41, found[0][2])
    assert (request.correlation_id, request.body, request.header_length) == (
        "corr-1",
        b'{"x": 1}',
        frames.NO_HEADER,
    )


def test_routes_draw_by_weight_and_honour_the_header() -> None:
    route = Route.build(
        "flights", None, {"blue": 90, "green": 10}, {"shadow": 20}, {"blue", "green", "shadow"}
    )
    assert route.choose(None, 0.0) == "blue" and route.choose(None, 0.95) == "green"
    assert route.choose("shadow") == "shadow"
    assert route.mirror_to("blue", 0.1) == "shadow" and route.mirror_to("blue", 0.5) is None
    with pytest.raises(RouteError, match="no deployment 'purple'"):
        route.choose("purple")
    with pytest.raises(RouteError, match="sends no traffic"):
        Route.build("flights", None, {}, {}, {"blue"}).choose(None)
