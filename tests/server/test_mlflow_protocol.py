"""The MLflow wire format: the error shape, malformed requests, prefixes, unknown endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from keel.errors import Conflict, InvalidInput, NotFound, Unavailable
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, endpoint, error_body
from keel.workspace import Workspace

if TYPE_CHECKING:
    from conftest import MlflowApi

pytestmark = pytest.mark.anyio


def test_the_error_body_has_exactly_code_and_message() -> None:
    body = error_body(NotFound("no job named 'x'", hint="see `keel job list`"))
    assert body == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "no job named 'x' (see `keel job list`)",
    }


async def test_malformed_bodies_are_bad_requests(local_api: MlflowApi) -> None:
    for content in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
        answer = await local_api.call(
            "POST",
            "runs/create",
            content=content,
            status=400,
            headers={"content-type": "application/json"},
        )
        assert answer["error_code"] == "BAD_REQUEST", content


async def test_bare_nan_literals_from_python_json_are_accepted(local_api: MlflowApi) -> None:
    run_id = await local_api.new_run()
    content = f'{{"run_id": "{run_id}", "key": "x", "value": NaN, "timestamp": 1}}'.encode()
    await local_api.call("POST", "runs/log-metric", content=content)
    history = await local_api.get("metrics/get-history", {"run_id": run_id, "metric_key": "x"})
    assert history["metrics"][0]["value"] == "NaN"


async def test_wrong_types_and_missing_fields_name_the_field(local_api: MlflowApi) -> None:
    run_id = await local_api.new_run()
    cases = [
        ("experiments/create", {"name": ["a"]}, "name"),
        ("runs/create", {"experiment_id": "zero"}, "experiment id"),
        ("runs/update", {"status": "FINISHED"}, "run_id"),
        ("runs/update", {"run_id": run_id, "status": "DONE"}, "status"),
        ("runs/log-batch", {"run_id": run_id, "params": "p"}, "params"),
        ("runs/log-batch", {"run_id": run_id, "tags": [{"key": "k"}]}, "tags[0].value"),
        ("runs/search", {"max_results": "many"}, "max_results"),
        ("runs/search", {"run_view_type": "SOME"}, "run_view_type"),
        ("runs/log-parameter", {"run_id": run_id, "key": "k"}, "value"),
    ]
    for path, body, named in cases:
        answer = await local_api.post(path, body, status=400)
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE", (path, answer)
        assert named in answer["message"], (path, answer)
        assert set(answer) == {"error_code", "message"}


async def test_unknown_endpoints_and_methods_are_endpoint_not_found(local_api: MlflowApi) -> None:
    for method, path in (
        ("POST", "/api/2.0/mlflow/runs/fly"),
        ("GET", "/api/2.0/mlflow/runs/create"),
        ("GET", "/api/3.0/mlflow/server-info"),
        ("POST", "/ajax-api/2.0/mlflow/nothing"),
    ):
        response = await local_api.client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


async def test_the_ajax_prefix_serves_the_same_api(local_api: MlflowApi) -> None:
    response = await local_api.client.get(
        "/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}
    )
    assert response.json()["experiment"]["name"] == "Default"
    assert (await local_api.client.get("/version")).status_code == 200
    assert (await local_api.client.get("/health")).text == "OK"


def _boom(_context: Context, _fields: Fields) -> JSON:
    raise RuntimeError("secret detail /home/user/.keel at line 42")


def _refuse(_context: Context, fields: Fields) -> JSON:
    raise {
        "conflict": Conflict("taken"),
        "busy": Unavailable("database locked"),
        "bad": InvalidInput("nope"),
    }[fields.text("kind")]


async def test_unexpected_errors_are_500_without_details(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """A real failing handler behind the real endpoint wrapper: the client sees no trace."""
    context = Context(workspace)
    app = Starlette(
        routes=[
            Route("/boom", endpoint(_boom, context), methods=["POST"]),
            Route("/refuse", endpoint(_refuse, context), methods=["POST"]),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        response = await client.post("/boom", json={})
        refused = {
            kind: await client.post("/refuse", json={"kind": kind}) for kind in ("conflict", "busy", "bad")
        }
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "secret detail" in caplog.text  # the operator still gets it, in the server log
    assert {k: (r.status_code, r.json()["error_code"]) for k, r in refused.items()} == {
        "conflict": (400, "RESOURCE_ALREADY_EXISTS"),
        "busy": (503, "TEMPORARILY_UNAVAILABLE"),
        "bad": (400, "INVALID_PARAMETER_VALUE"),
    }
