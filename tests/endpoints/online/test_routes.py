"""Every route of a real gateway, with real workers: Azure /score, MLflow /invocations, OIP, auth."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.endpoints.online.conftest import COLUMNS, Served, expected, rows


@pytest.fixture(scope="module")
def flights(served: Served) -> Served:
    served.endpoint("flights")
    served.deploy(
        "flights", "blue", all_traffic=True, request_settings={"max_concurrent_requests_per_instance": 8}
    )
    served.scripted("flights", "green")
    served.settle()
    return served


def test_score_runs_the_azure_scoring_script_on_a_pickled_model(
    flights: Served, models: dict[str, Path]
) -> None:
    data = rows(3)
    body = {"input_data": {"columns": COLUMNS, "data": data}}
    headers = flights.headers("flights", **{"azureml-model-deployment": "green"})
    answer = httpx.post(f"{flights.url}/endpoints/flights/score", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected(models, data)
    assert answer.headers["azureml-model-deployment"] == "green"
    assert len(answer.headers["x-request-id"]) >= 16
    assert "init done, model dir" in flights.logs("flights", "green")


def test_score_without_a_script_takes_azure_input_data(flights: Served, models: dict[str, Path]) -> None:
    data = rows(2, seed=1)
    for input_data in (
        {"columns": COLUMNS, "index": [0, 1], "data": data},
        [dict(zip(COLUMNS, row, strict=True)) for row in data],
        {name: [row[i] for row in data] for i, name in enumerate(COLUMNS)},
        data,
    ):
        answer = httpx.post(
            f"{flights.url}/endpoints/flights/score",
            json={"input_data": input_data},
            headers=flights.headers("flights"),
        )
        assert answer.status_code == 200, (input_data, answer.text)
        assert answer.json() == expected(models, data)
        assert answer.headers["azureml-model-deployment"] == "blue"


def test_invocations_accepts_every_mlflow_shape(flights: Served, models: dict[str, Path]) -> None:
    data = rows(2, seed=2)
    want = {"predictions": expected(models, data)}
    records = [dict(zip(COLUMNS, row, strict=True)) for row in data]
    shapes = [
        {"dataframe_split": {"columns": COLUMNS, "data": data}},
        {"dataframe_records": records},
        {"instances": records},
        {"instances": data},
        {"inputs": {name: [row[i] for row in data] for i, name in enumerate(COLUMNS)}},
        {"inputs": data},
    ]
    url = f"{flights.url}/endpoints/flights/invocations"
    for shape in shapes:
        answer = httpx.post(url, json=shape, headers=flights.headers("flights"))
        assert answer.status_code == 200, (shape, answer.text)
        assert answer.json() == want
    csv = ",".join(COLUMNS) + "\n" + "\n".join(",".join(str(v) for v in row) for row in data) + "\n"
    answer = httpx.post(url, content=csv, headers=flights.headers("flights", **{"content-type": "text/csv"}))
    assert answer.json() == want


def test_invocations_reaches_a_scripted_deployment_too(flights: Served, models: dict[str, Path]) -> None:
    data = rows(2, seed=3)
    answer = httpx.post(
        f"{flights.url}/endpoints/flights/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": data}},
        headers=flights.headers("flights", **{"azureml-model-deployment": "green"}),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected(models, data)}


def test_open_inference_protocol_routes(flights: Served, models: dict[str, Path]) -> None:
    headers = flights.headers("flights")
    assert httpx.get(f"{flights.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{flights.url}/v2/health/ready").status_code == 200
    metadata = httpx.get(f"{flights.url}/v2/models/flights", headers=headers).json()
    assert metadata["name"] == "flights"
    assert metadata["versions"] == ["blue", "green"]
    assert [item["name"] for item in metadata["inputs"]] == COLUMNS
    ready = httpx.get(f"{flights.url}/v2/models/flights/versions/blue/ready", headers=headers)
    assert ready.json() == {"name": "flights", "ready": True}
    data = rows(4, seed=4)
    request = {
        "id": "req-1",
        "inputs": [
            {"name": name, "shape": [4], "datatype": "FP64", "data": [row[i] for row in data]}
            for i, name in enumerate(COLUMNS)
        ],
    }
    answer = httpx.post(f"{flights.url}/v2/models/flights/infer", json=request, headers=headers).json()
    assert answer["model_name"] == "flights" and answer["model_version"] == "blue" and answer["id"] == "req-1"
    assert answer["outputs"][0]["shape"] == [4]
    assert answer["outputs"][0]["data"] == expected(models, data)
    matrix = {"inputs": [{"name": "x", "shape": [4, 4], "datatype": "FP32", "data": data}]}
    answer = httpx.post(f"{flights.url}/v2/models/flights/versions/blue/infer", json=matrix, headers=headers)
    assert answer.json()["outputs"][0]["data"] == expected(models, data)


def test_every_route_but_health_wants_the_key(flights: Served) -> None:
    body = {"input_data": {"columns": COLUMNS, "data": rows(1)}}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": flights.key("flights")}):
        for method, path in (
            ("POST", "/endpoints/flights/score"),
            ("POST", "/endpoints/flights/invocations"),
            ("POST", "/v2/models/flights/infer"),
            ("GET", "/v2/models/flights"),
            ("GET", "/v2/models/flights/ready"),
            ("GET", "/v2"),
        ):
            answer = httpx.request(method, f"{flights.url}{path}", json=body, headers=headers)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert "Bearer" in answer.text
    assert httpx.get(f"{flights.url}/v2/health/live").status_code == 200


def test_secondary_key_works_and_regeneration_takes_effect(flights: Served) -> None:
    from keel.endpoints.online.records import credentials, regenerate_keys

    keys = credentials(flights.workspace, "flights")
    url = f"{flights.url}/v2/models/flights/ready"
    assert httpx.get(url, headers={"Authorization": f"Bearer {keys['secondaryKey']}"}).status_code == 200
    regenerate_keys(flights.workspace, "flights", "secondary")
    flights.settle()
    assert httpx.get(url, headers={"Authorization": f"Bearer {keys['secondaryKey']}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {keys['primaryKey']}"}).status_code == 200


def test_tokens_for_aml_token_endpoints(flights: Served) -> None:
    served = flights
    served.endpoint("tokened", auth_mode="aml_token")
    served.deploy("tokened", "only", all_traffic=True)
    served.settle()
    from keel.endpoints.online.records import credentials

    token = credentials(served.workspace, "tokened")
    assert token["tokenType"] == "Bearer" and "primaryKey" not in token
    body = {"input_data": {"columns": COLUMNS, "data": rows(1)}}
    url = f"{served.url}/endpoints/tokened/score"
    answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token['accessToken']}"})
    assert answer.status_code == 200, answer.text
    forged = token["accessToken"].rsplit(".", 1)[0] + ".forged"
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    another_endpoints_key = served.key("flights")
    assert (
        httpx.post(url, json=body, headers={"Authorization": f"Bearer {another_endpoints_key}"}).status_code
        == 401
    )


def test_unknown_endpoint_deployment_and_route(flights: Served) -> None:
    headers = flights.headers("flights")
    answer = httpx.post(f"{flights.url}/endpoints/nowhere/score", json={}, headers=headers)
    assert answer.status_code == 404 and "nowhere" in answer.text
    answer = httpx.post(
        f"{flights.url}/endpoints/flights/score",
        json={"input_data": []},
        headers={**headers, "azureml-model-deployment": "purple"},
    )
    assert answer.status_code == 404 and "purple" in answer.json()["error"]["message"]
    assert httpx.get(f"{flights.url}/endpoints/flights/score", headers=headers).status_code == 405
    assert httpx.get(f"{flights.url}/nothing/here").status_code == 404


def test_malformed_bodies_get_a_400_that_says_what_is_wrong(flights: Served) -> None:
    headers = flights.headers("flights")
    cases = [
        ("/endpoints/flights/score", b"not json", "not valid JSON"),
        ("/endpoints/flights/score", b'{"data": []}', "input_data"),
        (
            "/endpoints/flights/invocations",
            b'{"dataframe_split": {"columns": ["distance"], "data": [[1]]}}',
            "missing",
        ),
        ("/endpoints/flights/invocations", b'{"instances": [], "inputs": []}', "exactly one of the keys"),
        ("/endpoints/flights/invocations", b'{"dataframe_records": [{"distance": "far"}]}', "distance"),
        (
            "/v2/models/flights/infer",
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1]}]}',
            "shape",
        ),
        (
            "/v2/models/flights/infer",
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "NOPE", "data": [1]}]}',
            "datatype",
        ),
    ]
    for path, body, words in cases:
        answer = httpx.post(f"{flights.url}{path}", content=body, headers=headers)
        assert answer.status_code == 400, (path, body, answer.text)
        assert words in answer.text, (path, answer.text)


def test_a_raising_run_is_a_500_and_the_deployment_keeps_serving(
    flights: Served, models: dict[str, Path]
) -> None:
    headers = flights.headers("flights", **{"azureml-model-deployment": "green"})
    answer = httpx.post(f"{flights.url}/endpoints/flights/score", json={"fail": True}, headers=headers)
    assert answer.status_code == 500
    assert answer.json()["error"]["message"] == "run() raised ValueError: asked to fail"
    data = rows(1, seed=9)
    answer = httpx.post(
        f"{flights.url}/endpoints/flights/score",
        json={"input_data": {"columns": COLUMNS, "data": data}},
        headers=headers,
    )
    assert answer.status_code == 200 and answer.json() == expected(models, data)
