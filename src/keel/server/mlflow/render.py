"""Keel's records as MLflow's JSON messages: Experiment, Run, Metric, LoggedModel.

Field names are the proto names, int64 values are JSON numbers, doubles that JSON
cannot hold are the strings protobuf uses ("NaN", "Infinity", "-Infinity"), and unset
optional fields are left out, as the MLflow server does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keel.tracking.entities import (
    Experiment,
    Job,
    JobInput,
    JobStatus,
    MetricPoint,
    MetricSummary,
    json_number,
)
from keel.tracking.logged_models import LoggedModel, ModelMetric, ModelStatus

JSON = dict[str, Any]

RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"

RUN_STATUS = {
    JobStatus.QUEUED: "SCHEDULED",
    JobStatus.PREPARING: "RUNNING",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.PAUSED: "RUNNING",
    JobStatus.CANCEL_REQUESTED: "RUNNING",
    JobStatus.COMPLETED: "FINISHED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "KILLED",
}
MODEL_STATUS = {
    ModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    ModelStatus.READY: "LOGGED_MODEL_READY",
    ModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
MODEL_INPUT_TYPE = "model"
DATASET_INPUT_TYPE = "dataset"


def artifact_uri(location: str) -> str:
    """Where a client finds artifacts: through the server's proxy unless stored elsewhere."""
    if "://" in location or location.startswith("/"):
        return location
    return f"mlflow-artifacts:/{location}"


def page(key: str, items: list[JSON], next_page_token: str | None) -> JSON:
    """A search answer: the items, and the token for the next page when there is one."""
    answer: JSON = {key: items}
    if next_page_token:
        answer["next_page_token"] = next_page_token
    return answer


def pairs(values: Mapping[str, str]) -> list[JSON]:
    return [{"key": key, "value": value} for key, value in values.items()]


def experiment(found: Experiment) -> JSON:
    return {
        "experiment_id": str(found.id),
        "name": found.name,
        "artifact_location": artifact_uri(found.artifact_location or str(found.id)),
        "lifecycle_stage": found.lifecycle_stage.value,
        "last_update_time": found.updated_at,
        "creation_time": found.created_at,
        "tags": pairs(found.tags),
    }


def run_info(job: Job) -> JSON:
    info: JSON = {
        "run_id": job.name,
        "run_uuid": job.name,
        "run_name": job.display_name or job.name,
        "experiment_id": str(job.experiment_id),
        "status": RUN_STATUS[job.status],
        "artifact_uri": artifact_uri(job.artifact_location),
        "lifecycle_stage": job.lifecycle_stage.value,
    }
    for name, value in (
        ("user_id", job.user_id),
        ("start_time", job.start_time),
        ("end_time", job.end_time),
    ):
        if value is not None:
            info[name] = value
    return info


def run(job: Job, outputs: Sequence[str] = ()) -> JSON:
    """A whole Run: info, latest metrics, params, tags, inputs and the models it produced."""
    return {
        "info": run_info(job),
        "data": {
            "metrics": [latest_metric(summary) for summary in job.metrics.values()],
            "params": pairs(job.params),
            "tags": pairs(run_tags(job)),
        },
        "inputs": {
            "dataset_inputs": [dataset_input(i) for i in job.inputs if i.type != MODEL_INPUT_TYPE],
            "model_inputs": [{"model_id": i.name} for i in job.inputs if i.type == MODEL_INPUT_TYPE],
        },
        "outputs": {"model_outputs": [{"model_id": m, "step": 0} for m in outputs]},
    }


def run_tags(job: Job) -> dict[str, str]:
    """The job's tags, plus the two MLflow reads its name and nesting from."""
    tags = dict(job.tags)
    if job.display_name and RUN_NAME_TAG not in tags:
        tags[RUN_NAME_TAG] = job.display_name
    if job.parent_name and PARENT_RUN_TAG not in tags:
        tags[PARENT_RUN_TAG] = job.parent_name
    return tags


def latest_metric(summary: MetricSummary) -> JSON:
    return {
        "key": summary.key,
        "value": json_number(summary.last),
        "timestamp": summary.last_timestamp,
        "step": summary.last_step,
    }


def metric(point: MetricPoint, *, run_id: str | None = None) -> JSON:
    rendered: JSON = {
        "key": point.key,
        "value": json_number(point.value),
        "timestamp": point.timestamp,
        "step": point.step,
    }
    if run_id is not None:
        rendered["run_id"] = run_id
    return rendered


def dataset_input(item: JobInput) -> JSON:
    dataset: JSON = {"name": item.name}
    for name, value in (
        ("digest", item.digest),
        ("source_type", item.source_type),
        ("source", item.uri),
        ("schema", item.schema),
        ("profile", item.profile),
    ):
        if value is not None:
            dataset[name] = value
    return {"tags": pairs(item.tags), "dataset": dataset}


def logged_model(model: LoggedModel) -> JSON:
    info: JSON = {
        "model_id": model.id,
        "experiment_id": str(model.experiment_id),
        "name": model.name,
        "creation_timestamp_ms": model.created_at,
        "last_updated_timestamp_ms": model.updated_at,
        "artifact_uri": artifact_uri(model.artifact_location),
        "status": MODEL_STATUS[model.status],
        "tags": pairs(model.tags),
    }
    for name, value in (
        ("model_type", model.model_type),
        ("source_run_id", model.job_name),
        ("status_message", model.status_message),
    ):
        if value is not None:
            info[name] = value
    return {
        "info": info,
        "data": {"params": pairs(model.params), "metrics": model_metrics(model.metrics)},
    }


def model_metrics(items: Iterable[ModelMetric]) -> list[JSON]:
    rendered = []
    for item in items:
        entry: JSON = {
            "key": item.key,
            "value": json_number(item.value),
            "timestamp": item.timestamp,
            "step": item.step,
            "model_id": item.model_id,
        }
        for name, value in (
            ("run_id", item.job_name),
            ("dataset_name", item.dataset_name),
            ("dataset_digest", item.dataset_digest),
        ):
            if value is not None:
                entry[name] = value
        rendered.append(entry)
    return rendered
