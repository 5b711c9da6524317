"""The MLflow REST API in-process: experiments, runs, metrics, searches and errors.

Each test runs on SQLite and on PostgreSQL (the ``store`` fixture), since every
endpoint here is a database round trip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from keel.store.schema import metrics
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job, set_job_status
from keel.tracking.search import search_jobs

if TYPE_CHECKING:
    from conftest import MlflowApi

pytestmark = pytest.mark.anyio


# -- experiments -------------------------------------------------------------------------


async def test_experiments_are_created_read_renamed_tagged_deleted_and_restored(
    api: MlflowApi,
) -> None:
    created = await api.post(
        "experiments/create", {"name": "flights", "tags": [{"key": "team", "value": "ml"}]}
    )
    experiment_id = created["experiment_id"]
    found = (await api.get("experiments/get", {"experiment_id": experiment_id}))["experiment"]
    assert found["name"] == "flights" and found["lifecycle_stage"] == "active"
    assert found["tags"] == [{"key": "team", "value": "ml"}]
    assert found["artifact_location"] == f"mlflow-artifacts:/{experiment_id}"
    assert isinstance(found["creation_time"], int)
    await api.post("experiments/update", {"experiment_id": experiment_id, "new_name": "trips"})
    by_name = await api.get("experiments/get-by-name", {"experiment_name": "trips"})
    assert by_name["experiment"]["experiment_id"] == experiment_id
    await api.post(
        "experiments/set-experiment-tag",
        {"experiment_id": experiment_id, "key": "stage", "value": "dev"},
    )
    await api.post("experiments/delete-experiment-tag", {"experiment_id": experiment_id, "key": "team"})
    tags = (await api.get("experiments/get", {"experiment_id": experiment_id}))["experiment"]
    assert tags["tags"] == [{"key": "stage", "value": "dev"}]
    await api.post("experiments/delete", {"experiment_id": experiment_id})
    active = await api.post("experiments/search", {"view_type": "ACTIVE_ONLY"})
    assert [e["name"] for e in active["experiments"]] == ["Default"]
    deleted = await api.post("experiments/search", {"view_type": "DELETED_ONLY"})
    assert [e["name"] for e in deleted["experiments"]] == ["trips"]
    await api.post("experiments/restore", {"experiment_id": experiment_id})
    everything = await api.get("experiments/search", {"view_type": "ALL"})
    assert {e["name"] for e in everything["experiments"]} == {"Default", "trips"}


async def test_experiment_errors_use_mlflow_codes_and_statuses(api: MlflowApi) -> None:
    await api.post("experiments/create", {"name": "twice"})
    again = await api.post("experiments/create", {"name": "twice"}, status=400)
    assert again["error_code"] == "RESOURCE_ALREADY_EXISTS"
    missing = await api.get("experiments/get", {"experiment_id": "999"}, status=404)
    assert missing["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    unnamed = await api.get("experiments/get-by-name", {"experiment_name": "nope"}, status=404)
    assert unnamed["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    nameless = await api.post("experiments/create", {}, status=400)
    assert nameless["error_code"] == "INVALID_PARAMETER_VALUE" and "'name'" in nameless["message"]


async def test_experiment_search_filters_orders_and_pages(api: MlflowApi) -> None:
    for name, team in (("alpha", "a"), ("beta", "b"), ("gamma", "a"), ("delta", "a")):
        await api.post("experiments/create", {"name": name, "tags": [{"key": "team", "value": team}]})
    found = await api.post(
        "experiments/search",
        {"filter": "tags.team = 'a' AND name != 'delta'", "order_by": ["name DESC"]},
    )
    assert [e["name"] for e in found["experiments"]] == ["gamma", "alpha"]
    liked = await api.post("experiments/search", {"filter": "name LIKE '%ta'"})
    assert {e["name"] for e in liked["experiments"]} == {"beta", "delta"}
    first = await api.post("experiments/search", {"max_results": 2, "order_by": ["name"]})
    assert [e["name"] for e in first["experiments"]] == ["Default", "alpha"]
    rest = await api.post(
        "experiments/search",
        {"max_results": 10, "order_by": ["name"], "page_token": first["next_page_token"]},
    )
    assert [e["name"] for e in rest["experiments"]] == ["beta", "delta", "gamma"]
    assert "next_page_token" not in rest


# -- runs --------------------------------------------------------------------------------


async def test_a_run_is_a_keel_job_named_by_its_run_id(api: MlflowApi) -> None:
    answer = await api.post(
        "runs/create",
        {
            "experiment_id": "0",
            "run_name": "baseline",
            "user_id": "ada",
            "start_time": "1700000000000",
            "tags": [{"key": "team", "value": "ml"}],
        },
    )
    run = answer["run"]
    run_id = run["info"]["run_id"]
    assert run["info"] == {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": "baseline",
        "experiment_id": "0",
        "user_id": "ada",
        "status": "RUNNING",
        "start_time": 1700000000000,
        "artifact_uri": f"mlflow-artifacts:/0/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    assert {"key": "mlflow.runName", "value": "baseline"} in run["data"]["tags"]
    job = get_job(api.workspace.store, run_id)
    assert (job.type, job.display_name, job.user_id) == ("run", "baseline", "ada")
    assert job.status == JobStatus.RUNNING and job.heartbeat_at is None
    assert job.tags["team"] == "ml"


async def test_runs_are_updated_deleted_and_restored(api: MlflowApi) -> None:
    run_id = await api.new_run()
    info = (
        await api.post(
            "runs/update",
            {
                "run_id": run_id,
                "status": "FINISHED",
                "end_time": 1700000005000,
                "run_name": "renamed",
            },
        )
    )["run_info"]
    assert (info["status"], info["end_time"], info["run_name"]) == (
        "FINISHED",
        1700000005000,
        "renamed",
    )
    job = get_job(api.workspace.store, run_id)
    assert job.status == JobStatus.COMPLETED and job.tags["mlflow.runName"] == "renamed"
    await api.post("runs/delete", {"run_id": run_id})
    gone = (await api.get("runs/get", {"run_id": run_id}))["run"]["info"]
    assert gone["lifecycle_stage"] == "deleted"
    await api.post("runs/restore", {"run_id": run_id})
    assert get_job(api.workspace.store, run_id).lifecycle_stage.value == "active"
    missing = await api.get("runs/get", {"run_id": "no_such_run"}, status=404)
    assert missing["error_code"] == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    ("keel_status", "mlflow_status"),
    [
        (JobStatus.QUEUED, "SCHEDULED"),
        (JobStatus.PREPARING, "RUNNING"),
        (JobStatus.RUNNING, "RUNNING"),
        (JobStatus.PAUSED, "RUNNING"),
        (JobStatus.COMPLETED, "FINISHED"),
        (JobStatus.FAILED, "FAILED"),
        (JobStatus.CANCELED, "KILLED"),
    ],
)
async def test_keel_statuses_read_as_mlflow_statuses(
    api: MlflowApi, keel_status: JobStatus, mlflow_status: str
) -> None:
    run_id = await api.new_run()
    set_job_status(api.workspace.store, run_id, keel_status)
    info = (await api.get("runs/get", {"run_id": run_id}))["run"]["info"]
    assert info["status"] == mlflow_status
    if mlflow_status != "RUNNING":
        await api.post("runs/update", {"run_id": run_id, "status": mlflow_status})
        assert get_job(api.workspace.store, run_id).status == keel_status


async def test_nested_runs_become_child_jobs(api: MlflowApi) -> None:
    parent = await api.new_run(run_name="sweep")
    child = await api.new_run(tags=[{"key": "mlflow.parentRunId", "value": parent}])
    assert get_job(api.workspace.store, child).parent_name == parent
    children = search_jobs(api.workspace.store, parent_id=get_job(api.workspace.store, parent).id)
    assert [job.name for job in children.jobs] == [child]


async def test_params_tags_and_their_conflicts(api: MlflowApi) -> None:
    run_id = await api.new_run()
    await api.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    await api.post("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
    changed = await api.post(
        "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"}, status=400
    )
    assert changed["error_code"] == "INVALID_PARAMETER_VALUE" and "'lr'" in changed["message"]
    too_long = await api.post(
        "runs/log-parameter", {"run_id": run_id, "key": "big", "value": "x" * 6001}, status=400
    )
    assert too_long["error_code"] == "INVALID_PARAMETER_VALUE"
    await api.post("runs/set-tag", {"run_uuid": run_id, "key": "mlflow.runName", "value": "new"})
    await api.post("runs/set-tag", {"run_id": run_id, "key": "stage", "value": "dev"})
    await api.post("runs/delete-tag", {"run_id": run_id, "key": "stage"})
    absent = await api.post("runs/delete-tag", {"run_id": run_id, "key": "stage"}, status=404)
    assert absent["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    run = (await api.get("runs/get", {"run_id": run_id}))["run"]
    assert run["info"]["run_name"] == "new"
    assert run["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert "stage" not in {tag["key"] for tag in run["data"]["tags"]}


# -- metrics -----------------------------------------------------------------------------


async def test_metrics_accept_nan_infinities_and_int64_strings(api: MlflowApi) -> None:
    run_id = await api.new_run()
    for step, value in enumerate([0.5, "NaN", "Infinity", "-Infinity", 3, "2.5"]):
        await api.post(
            "runs/log-metric",
            {
                "run_id": run_id,
                "key": "m",
                "value": value,
                "timestamp": str(1000 + step),
                "step": str(step),
            },
        )
    history = await api.get("metrics/get-history", {"run_id": run_id, "metric_key": "m"})
    values = [point["value"] for point in history["metrics"]]
    assert values == [0.5, "NaN", "Infinity", "-Infinity", 3.0, 2.5]
    assert [p["step"] for p in history["metrics"]] == [0, 1, 2, 3, 4, 5]
    assert all(isinstance(p["timestamp"], int) for p in history["metrics"])
    latest = (await api.get("runs/get", {"run_id": run_id}))["run"]["data"]["metrics"]
    assert latest == [{"key": "m", "value": 2.5, "timestamp": 1005, "step": 5}]
    summary = get_job(api.workspace.store, run_id).metrics["m"]
    assert summary.count == 6 and summary.max == math.inf and summary.min == -math.inf


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("value", "fast", "value"),
        ("value", None, "value"),
        ("timestamp", 1.5, "timestamp"),
        ("step", "two", "step"),
        ("step", -1, "step"),
        ("key", "../up", "key"),
        ("key", 7, "key"),
        ("run_id", 7, "run_id"),
    ],
)
async def test_bad_metric_fields_are_named_in_the_error(
    api: MlflowApi, field: str, value: object, named: str
) -> None:
    run_id = await api.new_run()
    body = {"run_id": run_id, "key": "loss", "value": 1.0, "timestamp": 1, "step": 0}
    body[field] = value
    answer = await api.post("runs/log-metric", body, status=400)
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert named in answer["message"]


async def test_metric_history_pages(api: MlflowApi) -> None:
    run_id = await api.new_run()
    await api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [{"key": "loss", "value": 1 / (s + 1), "timestamp": 5, "step": s} for s in range(25)],
        },
    )
    steps, token, pages = [], None, 0
    while True:
        query = {"run_id": run_id, "metric_key": "loss", "max_results": 10}
        page = await api.get("metrics/get-history", {**query, **({"page_token": token} if token else {})})
        steps += [p["step"] for p in page["metrics"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == list(range(25)) and pages == 3
    bulk = await api.get(
        "metrics/get-history-bulk-interval",
        {
            "run_ids": [run_id],
            "metric_key": "loss",
            "max_results": 5,
            "start_step": 10,
            "end_step": 20,
        },
    )
    assert [p["step"] for p in bulk["metrics"]] == [10, 12, 15, 18, 20]
    assert {p["run_id"] for p in bulk["metrics"]} == {run_id}


async def test_log_batch_writes_metrics_params_and_tags(api: MlflowApi) -> None:
    run_id = await api.new_run()
    await api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [{"key": "acc", "value": s / 10, "timestamp": 7, "step": s} for s in range(5)]
            + [{"key": "loss", "value": "NaN", "timestamp": "8"}],
            "params": [{"key": "model", "value": "rf"}, {"key": "model", "value": "rf"}],
            "tags": [{"key": "mlflow.runName", "value": "batched"}],
        },
    )
    job = get_job(api.workspace.store, run_id)
    assert job.metrics["acc"].count == 5 and job.metrics["acc"].last == 0.4
    assert math.isnan(job.metrics["loss"].last) and job.metrics["loss"].last_step == 0
    assert job.params == {"model": "rf"} and job.display_name == "batched"


async def test_log_batch_limits_and_refusals_write_nothing(api: MlflowApi) -> None:
    run_id = await api.new_run()
    point = {"key": "acc", "value": 1.0, "timestamp": 1, "step": 0}
    cases = [
        {"metrics": [point] * 1001},
        {"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
        {"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
        {"metrics": [point] * 950, "params": [{"key": f"p{i}", "value": "v"} for i in range(60)]},
        {"params": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]},
        {"metrics": [point, {**point, "value": "high"}]},
        {"metrics": [point, "not an object"]},
        {"metrics": {"key": "acc"}},
    ]
    for case in cases:
        answer = await api.post("runs/log-batch", {"run_id": run_id, **case}, status=400)
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE", case
    with api.workspace.store.read() as conn:
        assert conn.execute(select(metrics.c.step)).first() is None
    assert get_job(api.workspace.store, run_id).params == {}


async def test_metrics_for_an_unknown_run_are_refused(api: MlflowApi) -> None:
    answer = await api.post(
        "runs/log-metric",
        {"run_id": "ghost_run", "key": "x", "value": 1, "timestamp": 1},
        status=404,
    )
    assert answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# -- search and inputs -------------------------------------------------------------------


async def test_search_runs_filters_orders_pages_and_views(api: MlflowApi) -> None:
    experiment = (await api.post("experiments/create", {"name": "s"}))["experiment_id"]
    ids = []
    for index, model in enumerate(["rf", "rf", "lr", "rf"]):
        run_id = await api.new_run(experiment, run_name=f"run{index}")
        await api.post(
            "runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": "model", "value": model}],
                "metrics": [{"key": "acc", "value": index / 10, "timestamp": 1, "step": 0}],
            },
        )
        ids.append(run_id)
    found = await api.post(
        "runs/search",
        {
            "experiment_ids": [experiment],
            "filter": "params.model = 'rf' and metrics.acc > 0",
            "order_by": ["metrics.acc DESC"],
        },
    )
    assert [r["info"]["run_name"] for r in found["runs"]] == ["run3", "run1"]
    page = await api.post(
        "runs/search",
        {"experiment_ids": [experiment], "order_by": ["attributes.run_name ASC"], "max_results": 3},
    )
    assert [r["info"]["run_name"] for r in page["runs"]] == ["run0", "run1", "run2"]
    rest = await api.post(
        "runs/search",
        {
            "experiment_ids": [experiment],
            "order_by": ["attributes.run_name ASC"],
            "max_results": 3,
            "page_token": page["next_page_token"],
        },
    )
    assert [r["info"]["run_name"] for r in rest["runs"]] == ["run3"]
    await api.post("runs/delete", {"run_id": ids[0]})
    deleted = await api.post("runs/search", {"experiment_ids": [experiment], "run_view_type": "DELETED_ONLY"})
    assert [r["info"]["run_id"] for r in deleted["runs"]] == [ids[0]]
    bad = await api.post("runs/search", {"filter": "metrics.acc >"}, status=400)
    assert bad["error_code"] == "INVALID_PARAMETER_VALUE"


async def test_inputs_record_datasets_and_models(api: MlflowApi) -> None:
    run_id = await api.new_run()
    dataset = {
        "name": "flights",
        "digest": "abc123",
        "source_type": "local",
        "source": '{"uri": "data.csv"}',
        "schema": "{}",
        "profile": "{}",
    }
    await api.post(
        "runs/log-inputs",
        {
            "run_id": run_id,
            "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}],
            "models": [{"model_id": "m-123"}],
        },
    )
    run = (await api.get("runs/get", {"run_id": run_id}))["run"]
    assert run["inputs"]["dataset_inputs"] == [
        {"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": dataset}
    ]
    assert run["inputs"]["model_inputs"] == [{"model_id": "m-123"}]
    found = await api.post("runs/search", {"filter": "datasets.context = 'train'"})
    assert [r["info"]["run_id"] for r in found["runs"]] == [run_id]
