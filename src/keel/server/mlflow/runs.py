"""Runs over MLflow REST. A run is a Keel job of type "run" whose name is the run id.

The run name MLflow shows is the job's display name (and the ``mlflow.runName`` tag);
the ``mlflow.parentRunId`` tag of a nested run also sets the job's parent, so
``keel job show`` lists it as a child. Runs created here have no heartbeat: an MLflow
client never sends one, and ends its runs with update-run.
"""

from __future__ import annotations

import orjson

from keel.errors import InvalidInput, NotFound
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import JSON, Fields, Handler, run_id, view_type
from keel.tracking import experiments, jobs, logged_models
from keel.tracking.entities import JobInput, JobStatus, LifecycleStage
from keel.tracking.names import new_job_name
from keel.tracking.search import MLFLOW_STATUSES, search_jobs

DEFAULT_MAX_RESULTS = 1000
LOGGED_MODELS_TAG = "mlflow.log-model.history"
# RunStatus enum numbers, for clients that send the number instead of the name.
_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def create_run(context: Context, fields: Fields) -> JSON:
    store = context.store
    experiment = experiments.get_experiment(store, fields.optional_text("experiment_id") or "0")
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidInput(f"experiment {experiment.name!r} is deleted; restore it to add runs")
    tags = fields.pairs("tags")
    run_name = fields.optional_text("run_name") or tags.get(render.RUN_NAME_TAG)
    name = new_job_name()
    tags[render.RUN_NAME_TAG] = run_name or name
    job = jobs.create_job(
        store,
        experiment,
        name=name,
        display_name=run_name or name,  # MLflow always has a run name; the job name serves
        parent_id=_parent_id(context, tags.get(render.PARENT_RUN_TAG)),
        job_type="run",
        status=JobStatus.RUNNING,
        user_id=fields.optional_text("user_id"),
        start_time=fields.int64("start_time"),
        tags=tags,
        heartbeat=False,
    )
    context.remember_job(job.name, job.id)
    return {"run": render.run(job)}


def _parent_id(context: Context, parent: str | None) -> int | None:
    if not parent:
        return None
    try:
        return context.job_id(parent)
    except NotFound:
        return None  # MLflow keeps such a tag without checking it; so does Keel


def get_run(context: Context, fields: Fields) -> JSON:
    job = jobs.get_job(context.store, run_id(fields))
    outputs = logged_models.outputs_for(context.store, [job.id])
    return {"run": render.run(job, outputs.get(job.id, []))}


def update_run(context: Context, fields: Fields) -> JSON:
    """Status and end time change only on tracking runs: a job Keel runs (a command,
    a pipeline step) ends when its process ends, whatever ``mlflow.end_run()`` says."""
    name = run_id(fields)
    run_name = fields.optional_text("run_name") or None
    status, end_time = _status(fields), fields.int64("end_time")
    if jobs.get_job(context.store, name).type != "run":
        status, end_time = None, None
    job = jobs.update_job(context.store, name, status=status, end_time=end_time, display_name=run_name)
    if run_name:
        jobs.set_tags(context.store, job.id, {render.RUN_NAME_TAG: run_name})
    return {"run_info": render.run_info(job)}


def _status(fields: Fields) -> JobStatus | None:
    value = fields.raw("status")
    if value is None:
        return None
    text = _STATUS_NUMBERS.get(value, value) if isinstance(value, int) else value
    status = MLFLOW_STATUSES.get(text) if isinstance(text, str) else None
    if status is None:
        known = ", ".join(MLFLOW_STATUSES)
        raise InvalidInput(f"status must be one of {known}, got {value!r:.60}")
    return status


def delete_run(context: Context, fields: Fields) -> JSON:
    jobs.set_job_lifecycle(context.store, run_id(fields), LifecycleStage.DELETED)
    return {}


def restore_run(context: Context, fields: Fields) -> JSON:
    jobs.set_job_lifecycle(context.store, run_id(fields), LifecycleStage.ACTIVE)
    return {}


def search_runs(context: Context, fields: Fields) -> JSON:
    page = search_jobs(
        context.store,
        experiment_ids=_experiment_ids(fields) or None,
        filter=fields.optional_text("filter"),
        order_by=fields.texts("order_by") or None,
        max_results=fields.int64("max_results") or DEFAULT_MAX_RESULTS,
        page_token=fields.optional_text("page_token"),
        view=view_type(fields, "run_view_type"),
    )
    outputs = logged_models.outputs_for(context.store, [job.id for job in page.jobs])
    found = [render.run(job, outputs.get(job.id, [])) for job in page.jobs]
    return render.page("runs", found, page.next_page_token)


def _experiment_ids(fields: Fields) -> list[int]:
    value = fields.raw("experiment_ids")
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [experiments.parse_experiment_id(item) for item in items]


def log_param(context: Context, fields: Fields) -> JSON:
    job_id = context.job_id(run_id(fields))
    jobs.log_params(context.store, job_id, {fields.text("key"): fields.text("value")})
    return {}


def set_tag(context: Context, fields: Fields) -> JSON:
    name = run_id(fields)
    set_run_tags(context, name, {fields.text("key"): fields.text("value")})
    return {}


def set_run_tags(context: Context, name: str, tags: dict[str, str]) -> None:
    """Set tags; ``mlflow.runName`` also renames the run, as on an MLflow server."""
    jobs.set_tags(context.store, context.job_id(name), tags)
    if tags.get(render.RUN_NAME_TAG):
        jobs.update_job(context.store, name, display_name=tags[render.RUN_NAME_TAG])


def delete_tag(context: Context, fields: Fields) -> JSON:
    jobs.delete_tag(context.store, context.job_id(run_id(fields)), fields.text("key"))
    return {}


def log_inputs(context: Context, fields: Fields) -> JSON:
    job_id = context.job_id(run_id(fields))
    inputs = [_dataset_input(item) for item in fields.messages("datasets")]
    inputs += [
        JobInput(name=model_id, type=render.MODEL_INPUT_TYPE, digest=model_id)
        for model_id in (item.text("model_id") for item in fields.messages("models"))
    ]
    jobs.log_inputs(context.store, job_id, inputs)
    return {}


def _dataset_input(item: Fields) -> JobInput:
    dataset = item.message("dataset")
    return JobInput(
        name=dataset.text("name"),
        type=render.DATASET_INPUT_TYPE,
        uri=dataset.optional_text("source"),
        digest=dataset.text("digest"),
        source_type=dataset.optional_text("source_type"),
        schema=dataset.optional_text("schema"),
        profile=dataset.optional_text("profile"),
        tags=item.pairs("tags"),
    )


def log_outputs(context: Context, fields: Fields) -> JSON:
    job_id = context.job_id(run_id(fields))
    model_ids = [item.text("model_id") for item in fields.messages("models")]
    logged_models.link_outputs(context.store, job_id, model_ids)
    return {}


def log_model(context: Context, fields: Fields) -> JSON:
    """The MLflow 2 record of a saved model: appended to the run's model-history tag."""
    name = run_id(fields)
    try:
        model = orjson.loads(fields.text("model_json"))
    except orjson.JSONDecodeError:
        raise InvalidInput("model_json is not valid JSON") from None
    job = jobs.get_job(context.store, name)
    history = orjson.loads(job.tags.get(LOGGED_MODELS_TAG, "[]"))
    value = orjson.dumps([*history, model]).decode()
    jobs.set_tags(context.store, job.id, {LOGGED_MODELS_TAG: value})
    return {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/runs/create", create_run),
    ("GET", "/runs/get", get_run),
    ("POST", "/runs/update", update_run),
    ("POST", "/runs/delete", delete_run),
    ("POST", "/runs/restore", restore_run),
    ("POST", "/runs/search", search_runs),
    ("POST", "/runs/log-parameter", log_param),
    ("POST", "/runs/set-tag", set_tag),
    ("POST", "/runs/delete-tag", delete_tag),
    ("POST", "/runs/log-inputs", log_inputs),
    ("POST", "/runs/outputs", log_outputs),
    ("POST", "/runs/log-model", log_model),
]
