"""Quickstart stage 4: register the sweep's best model, then score a month it never saw, in batch.

Models: the best trial's ``model`` output (an MLflow model folder the trial wrote) is
registered as a version of ``flights-delay``, produced by that trial, so its lineage
runs back through the features and the cleaned data to the raw files; the alias
``champion`` points at it.
Batch: December's flights, held out of the data pipeline, become features through
the same ``prepare.py`` (a command job registering ``flights-2013-12``); the batch
endpoint ``flights-delay-batch`` scores them with a deployment of
``flights-delay@champion`` that has no scoring script (the MLflow model is enough),
on two worker processes, and registers the predictions as a data asset version.

The endpoint and deployment are Azure ML YAML files shipped beside the pipeline, so
``keel batch-endpoint create -f`` takes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.quickstart.flights import TARGET
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.endpoints.batch.endpoints import BatchDeployment
    from keel.models.registry import ModelVersion

MODEL = "flights-delay"
ALIAS = "champion"
ENDPOINT = "flights-delay-batch"
PREDICTION = "prediction"  # the column a no-code deployment appends


@dataclass(frozen=True)
class Scored:
    """What the batch scoring of the held-out month gave."""

    model: str  # name:version
    features_job: str
    batch_job: str
    features: str  # the scored data asset, name:version
    predictions: str  # the output data asset, name:version
    rows: int
    rows_per_second: float
    predicted_late: float  # share of rows
    actually_late: float
    accuracy: float  # share of rows whose prediction is the actual label


def run_scoring_stage(workspace: Workspace, console: Any, folder: Path, sweep: str) -> Scored:
    from keel.data.assets import resolve_asset
    from keel.quickstart.pipelines import run_and_report

    champion = register_champion(workspace, console, sweep)
    features_job = run_and_report(
        workspace, console, folder / "features.yml", [], "December (held out) → features, same prepare.py"
    )
    features = resolve_asset(workspace, "azureml:" + registered_output(workspace, features_job, "features"))
    deployment = deploy(workspace, folder)
    console.print(
        f"batch endpoint {ENDPOINT}: deployment {deployment.name} → {deployment.model_reference} "
        f"(no scoring script), {deployment.settings.workers} workers, "
        f"{deployment.settings.mini_batch_size} daily files per mini-batch"
    )
    batch_job = score(workspace, console, features.reference)
    scored_data = f"{features.name}:{features.version}"
    result = summarize(workspace, batch_job, model=champion, features_job=features_job, features=scored_data)
    console.print(
        f"  scored {result.rows:,} flights at {result.rows_per_second:,.0f} rows/s: "
        f"{result.predicted_late:.1%} predicted late, {result.actually_late:.1%} actually late, "
        f"accuracy {result.accuracy:.1%}"
    )
    console.print(f"  predictions: data asset {result.predictions}")
    return result


def register_champion(workspace: Workspace, console: Any, sweep: str) -> ModelVersion:
    """The sweep's best trial's model output, as the next version of ``flights-delay`` (the same
    version again when those files are registered already), and ``@champion`` pointing at it."""
    from keel.errors import KeelError
    from keel.models.aliases import set_alias
    from keel.models.registry import Request
    from keel.tracking.jobs import get_job

    best_trial = get_job(workspace.store, sweep).tags.get("keel.best_trial")
    if best_trial is None:
        raise KeelError(f"sweep {sweep} has no best trial to register", hint=f"keel job show {sweep}")
    best = get_job(workspace.store, best_trial)
    auc = best.metrics["valid_auc"].last
    request = Request(
        name=MODEL,
        path=f"azureml://jobs/{best.name}/outputs/model",
        description="will a flight arrive more than 15 minutes late? (the quickstart sweep's best trial)",
        tags={"sweep": sweep, "valid_auc": f"{auc:.4f}"},
        reuse_latest=True,
    )
    version, created = register_once(workspace, best.id, "model", request)
    set_alias(workspace, MODEL, ALIAS, version.version)
    verb = "registered" if created else "already registered:"
    inputs = len((version.signature or {}).get("inputs") or [])
    console.print(
        f"{verb} model {version.name}:{version.version} ({version.type}, {'/'.join(version.flavors)}, "
        f"signature of {inputs} columns) from trial {best.name} (valid AUC {auc:.4f}); "
        f"@{ALIAS} → version {version.version}"
    )
    return version


def register_once(workspace: Workspace, job_id: int, output: str, request: Any) -> tuple[ModelVersion, bool]:
    """``request`` registered, unless a version of the model already holds the job output's bytes
    (a quickstart run again: a reused or retrained step gives the same files another job name)."""
    from keel.errors import NotFound
    from keel.jobs.records import stored_outputs
    from keel.models.registry import list_models, register

    digest = stored_outputs(workspace.store, job_id)[output].digest
    try:
        versions = list_models(workspace, request.name)
    except NotFound:
        versions = []
    for version in versions:
        if digest is not None and version.digest == digest:
            return version, False
    return register(workspace, request)


def registered_output(workspace: Workspace, job_name: str, output: str) -> str:
    """The data asset version (``name:version``) a finished job registered its output as."""
    from keel.data.job_data import ASSET_TAG
    from keel.errors import KeelError
    from keel.tracking.jobs import get_job

    job = get_job(workspace.store, job_name)
    registered = job.tags.get(ASSET_TAG + output)
    if job.status.value != "completed" or registered is None:
        reason = f": {job.status_reason}" if job.status_reason else ""
        raise KeelError(
            f"job {job_name} {job.status.label.lower()}{reason}, and registered no output {output!r}",
            hint=f"keel job show {job_name}",
        )
    return registered


def deploy(workspace: Workspace, folder: Path) -> BatchDeployment:
    """The endpoint (created once) and its deployment, pointed at the champion as it is now."""
    from keel.endpoints.batch.endpoints import create_deployment, create_endpoint, get_endpoint
    from keel.endpoints.batch.specs import load_deployment, load_endpoint
    from keel.errors import NotFound

    try:
        endpoint = get_endpoint(workspace, ENDPOINT)
    except NotFound:
        endpoint = create_endpoint(workspace, load_endpoint(folder / "endpoint.yml"))
    loaded = load_deployment(folder / "deployment.yml")
    exists = loaded.spec.name in endpoint.deployments  # a rerun: the champion may have moved
    return create_deployment(workspace, loaded, replace=exists, set_default=True)


def score(workspace: Workspace, console: Any, data: str) -> str:
    """Invoke the endpoint on ``data`` and run the job here, printing its log; returns its name."""
    from keel.endpoints.batch.run import invoke, run_job
    from keel.quickstart.pipelines import follow_while_running

    job = invoke(workspace, ENDPOINT, input=data)
    console.print(f"[bold]batch scoring[/bold]: keel batch-endpoint invoke --name {ENDPOINT} --input {data}")
    console.print(f"  job {job.name}")
    follow_while_running(workspace, console, job.name, lambda: run_job(workspace, job.name), show_logs=True)
    return job.name


def summarize(
    workspace: Workspace, batch_job: str, *, model: ModelVersion, features_job: str, features: str
) -> Scored:
    """Read the finished job's figures and its registered output (every row, with its prediction)."""
    from keel.data.loading import load
    from keel.tracking.jobs import get_job

    predictions = registered_output(workspace, batch_job, "score")
    job = get_job(workspace.store, batch_job)
    table = load(f"azureml:{predictions}", workspace=workspace).select([TARGET, PREDICTION])
    frame = table.to_pandas()
    seconds = job.metrics.get("scoring_seconds")
    return Scored(
        model=f"{model.name}:{model.version}",
        features_job=features_job,
        batch_job=batch_job,
        features=features,
        predictions=predictions,
        rows=len(frame),
        rows_per_second=len(frame) / seconds.last if seconds is not None and seconds.last else 0.0,
        predicted_late=float(frame[PREDICTION].mean()),
        actually_late=float(frame[TARGET].mean()),
        accuracy=float((frame[PREDICTION] == frame[TARGET]).mean()),
    )
