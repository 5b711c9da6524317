"""Real clients against the gateway: Triton's tritonclient (Open Inference Protocol) and schemathesis."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.endpoints.online.conftest import COLUMNS, Served, expected, rows


@pytest.fixture(scope="module")
def oip(served: Served) -> Served:
    served.endpoint("flights-oip")
    served.deploy(
        "flights-oip", "blue", all_traffic=True, request_settings={"max_concurrent_requests_per_instance": 8}
    )
    served.settle()
    return served


def triton(served: Served):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gevent's import-time deprecation notices
        import tritonclient.http as httpclient
    return httpclient, httpclient.InferenceServerClient(url=served.url.removeprefix("http://"))


def test_tritonclient_health_metadata_and_infer(oip: Served, models: dict[str, Path]) -> None:
    httpclient, client = triton(oip)
    headers = oip.headers("flights-oip")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("flights-oip", headers=headers)
        assert client.is_model_ready("flights-oip", model_version="blue", headers=headers)
        metadata = client.get_model_metadata("flights-oip", headers=headers)
        assert metadata["name"] == "flights-oip"
        assert [item["name"] for item in metadata["inputs"]] == COLUMNS
        data = rows(5, seed=11)
        want = expected(models, data)
        for binary in (False, True):
            inputs = []
            for i, name in enumerate(COLUMNS):
                tensor = httpclient.InferInput(name, [5], "FP64")
                tensor.set_data_from_numpy(np.array([row[i] for row in data]), binary_data=binary)
                inputs.append(tensor)
            outputs = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
            result = client.infer(
                "flights-oip", inputs, outputs=outputs, headers=headers, request_id=f"r{binary}"
            )
            assert result.as_numpy("predict").tolist() == want
            assert result.get_response()["id"] == f"r{binary}"
        matrix = httpclient.InferInput("x", [5, 4], "FP32")
        matrix.set_data_from_numpy(np.array(data, dtype=np.float32))
        result = client.infer("flights-oip", [matrix], model_version="blue", headers=headers)
        assert result.as_numpy("predict").tolist() == want
    finally:
        client.close()


def test_tritonclient_sees_wrong_credentials_and_bad_input_as_errors(oip: Served) -> None:
    httpclient, client = triton(oip)
    from tritonclient.utils import InferenceServerException

    try:
        with pytest.raises(InferenceServerException, match="credentials"):
            client.get_model_metadata("flights-oip", headers={"Authorization": "Bearer nope"})
        tensor = httpclient.InferInput("distance", [2], "FP64")
        tensor.set_data_from_numpy(np.array([1.0, 2.0]), binary_data=False)
        with pytest.raises(InferenceServerException, match="missing"):
            client.infer("flights-oip", [tensor], headers=oip.headers("flights-oip"))
    finally:
        client.close()


def test_schemathesis_finds_no_server_error_and_every_4xx_explains(oip: Served) -> None:
    import schemathesis
    from hypothesis import HealthCheck, settings

    schema = schemathesis.openapi.from_url(f"{oip.url}/openapi.json")
    headers = oip.headers("flights-oip")
    problems: list[str] = []
    statuses: list[int] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        if response.status_code >= 500:
            problems.append(
                f"{case.method} {case.formatted_path} {response.status_code} {response.text[:200]}"
            )
        elif response.status_code >= 400 and response.status_code != 405:
            body = response.json()
            message = body.get("error") or body.get("message")
            if isinstance(message, dict):
                message = message.get("message")
            if not message:
                problems.append(
                    f"{case.method} {case.formatted_path} {response.status_code} says nothing: {body}"
                )

    for operation in schema.get_all_operations():
        strategy = operation.ok().as_strategy()
        from hypothesis import given

        given(strategy)(check)()
    assert problems == []
    assert len(statuses) > 100 and 400 in statuses and 200 in statuses, sorted(set(statuses))
