"""MLflow 3 logged models over REST, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from keel.tracking.jobs import get_job
from keel.tracking.logged_models import ModelStatus, get_logged_model

if TYPE_CHECKING:
    from conftest import MlflowApi

pytestmark = pytest.mark.anyio


async def _model(api: MlflowApi, **fields: object) -> dict[str, object]:
    answer = await api.post("logged-models", {"experiment_id": "0", **fields})
    model: dict[str, object] = answer["model"]
    return model


async def test_a_model_is_created_pending_then_finalized(api: MlflowApi) -> None:
    run_id = await api.new_run()
    model = await _model(
        api,
        name="model",
        source_run_id=run_id,
        model_type="sklearn",
        params=[{"key": "C", "value": "1.0"}],
        tags=[{"key": "flavor", "value": "sklearn"}],
    )
    info = model["info"]
    model_id = info["model_id"]
    assert model_id.startswith("m-") and info["name"] == "model"
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["source_run_id"] == run_id
    assert info["artifact_uri"] == f"mlflow-artifacts:/0/models/{model_id}/artifacts"
    assert model["data"]["params"] == [{"key": "C", "value": "1.0"}]
    ready = await api.call(
        "PATCH",
        f"logged-models/{model_id}",
        json={"model_id": model_id, "status": "LOGGED_MODEL_READY"},
    )
    assert ready["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    assert get_logged_model(api.workspace.store, model_id).status == ModelStatus.READY
    fetched = await api.get(f"logged-models/{model_id}")
    assert fetched["model"]["info"]["tags"] == [{"key": "flavor", "value": "sklearn"}]
    bad = await api.call("PATCH", f"logged-models/{model_id}", json={"status": "SHINY"}, status=400)
    assert bad["error_code"] == "INVALID_PARAMETER_VALUE"


async def test_tags_params_and_deletion(api: MlflowApi) -> None:
    model_id = (await _model(api))["info"]["model_id"]
    await api.call(
        "PATCH",
        f"logged-models/{model_id}/tags",
        json={"tags": [{"key": "a", "value": "1"}, {"key": "b/c", "value": "2"}]},
    )
    await api.call("DELETE", f"logged-models/{model_id}/tags/b/c")
    gone = await api.call("DELETE", f"logged-models/{model_id}/tags/b/c", status=404)
    assert gone["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    await api.post(f"logged-models/{model_id}/params", {"params": [{"key": "k", "value": "v"}]})
    await api.post(f"logged-models/{model_id}/params", {"params": [{"key": "k", "value": "v"}]})
    await api.post(f"logged-models/{model_id}/params", {"params": [{"key": "k", "value": "w"}]}, status=400)
    model = (await api.get(f"logged-models/{model_id}"))["model"]
    assert model["info"]["tags"] == [{"key": "a", "value": "1"}]
    assert model["data"]["params"] == [{"key": "k", "value": "v"}]
    await api.call("DELETE", f"logged-models/{model_id}", json={"model_id": model_id})
    missing = await api.get(f"logged-models/{model_id}", status=404)
    assert missing["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    kept = await api.get(f"logged-models/{model_id}", {"allow_deleted": "true"})
    assert kept["model"]["info"]["model_id"] == model_id
    unknown = await api.get("logged-models/m-nothing", status=404)
    assert unknown["error_code"] == "RESOURCE_DOES_NOT_EXIST"


async def test_search_filters_orders_and_pages(api: MlflowApi) -> None:
    run_id = await api.new_run()
    for name, score in (("a", 0.5), ("b", 0.9), ("c", 0.7)):
        model_id = (await _model(api, name=name, source_run_id=run_id))["info"]["model_id"]
        await api.post(
            "runs/log-metric",
            {
                "run_id": run_id,
                "key": "acc",
                "value": score,
                "timestamp": 1,
                "step": 0,
                "model_id": model_id,
            },
        )
    found = await api.post(
        "logged-models/search",
        {
            "experiment_ids": ["0"],
            "filter": f"metrics.acc > 0.6 AND source_run_id = '{run_id}'",
            "order_by": [{"field_name": "metrics.acc", "ascending": False}],
        },
    )
    assert [m["info"]["name"] for m in found["models"]] == ["b", "c"]
    by_name = await api.post("logged-models/search", {"experiment_ids": ["0"], "filter": "name = 'a'"})
    assert [m["info"]["name"] for m in by_name["models"]] == ["a"]
    page = await api.post(
        "logged-models/search",
        {
            "experiment_ids": ["0"],
            "max_results": 2,
            "order_by": [{"field_name": "name", "ascending": True}],
        },
    )
    rest = await api.post(
        "logged-models/search",
        {
            "experiment_ids": ["0"],
            "max_results": 2,
            "page_token": page["next_page_token"],
            "order_by": [{"field_name": "name", "ascending": True}],
        },
    )
    assert [m["info"]["name"] for m in page["models"] + rest["models"]] == ["a", "b", "c"]


async def test_linked_metrics_reach_the_model_without_doubling_the_run(api: MlflowApi) -> None:
    """MLflow re-sends a run's metrics with the model id: the history keeps one point."""
    run_id = await api.new_run()
    point = {"key": "acc", "value": 0.9, "timestamp": 5, "step": 0}
    await api.post("runs/log-batch", {"run_id": run_id, "metrics": [point]})
    model_id = (await _model(api, source_run_id=run_id))["info"]["model_id"]
    linked = {**point, "model_id": model_id, "dataset_name": "train", "dataset_digest": "d1"}
    await api.post("runs/log-batch", {"run_id": run_id, "metrics": [linked, linked]})
    await api.post(
        "runs/log-batch", {"run_id": run_id, "metrics": [{**linked, "value": "NaN", "key": "loss"}]}
    )
    assert get_job(api.workspace.store, run_id).metrics["acc"].count == 1
    metrics = (await api.get(f"logged-models/{model_id}"))["model"]["data"]["metrics"]
    assert metrics == [
        {
            "key": "acc",
            "value": 0.9,
            "timestamp": 5,
            "step": 0,
            "model_id": model_id,
            "run_id": run_id,
            "dataset_name": "train",
            "dataset_digest": "d1",
        },
        {
            "key": "loss",
            "value": "NaN",
            "timestamp": 5,
            "step": 0,
            "model_id": model_id,
            "run_id": run_id,
            "dataset_name": "train",
            "dataset_digest": "d1",
        },
    ]


async def test_outputs_link_models_to_their_run(api: MlflowApi) -> None:
    run_id = await api.new_run()
    model_id = (await _model(api))["info"]["model_id"]
    await api.post("runs/outputs", {"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]})
    run = (await api.get("runs/get", {"run_id": run_id}))["run"]
    assert run["outputs"]["model_outputs"] == [{"model_id": model_id, "step": 0}]
    model = await api.get(f"logged-models/{model_id}")
    assert model["model"]["info"]["source_run_id"] == run_id
    unknown = await api.post(
        "runs/outputs", {"run_id": run_id, "models": [{"model_id": "m-ghost"}]}, status=404
    )
    assert unknown["error_code"] == "RESOURCE_DOES_NOT_EXIST"


async def test_the_legacy_log_model_call_keeps_a_history_tag(api: MlflowApi) -> None:
    run_id = await api.new_run()
    for path in ("model", "other"):
        await api.post("runs/log-model", {"run_id": run_id, "model_json": f'{{"artifact_path": "{path}"}}'})
    tags = get_job(api.workspace.store, run_id).tags
    assert tags["mlflow.log-model.history"] == '[{"artifact_path":"model"},{"artifact_path":"other"}]'
