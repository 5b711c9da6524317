"""`keel quickstart` runs end to end on real data and leaves real, comparable jobs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keel.tracking.search import search_jobs
from keel.workspace import Workspace, resolve_workspace


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
    # Stage 2: the YAML pipeline ran, the sweep kept a best trial, and the rerun reused every step.
    pipelines = search_jobs(
        workspace.store, filter="attributes.type = 'pipeline'", order_by="attributes.created_at ASC"
    ).jobs
    assert len(pipelines) == 2 and all(job.status.value == "completed" for job in pipelines)
    rerun_steps = search_jobs(workspace.store, parent_id=pipelines[1].id).jobs
    assert {step.step_name for step in rerun_steps} == {"prepare", "train", "evaluate"}
    assert all(step.reused_from for step in rerun_steps)
    (sweep,) = search_jobs(workspace.store, filter="attributes.type = 'sweep'").jobs
    assert sweep.status.value == "completed" and sweep.tags["keel.best_trial"].startswith(sweep.name)
    workspace.close()
