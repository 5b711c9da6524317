"""Sweeps run for real: trials are child jobs, each a process logging through MLflow."""

from __future__ import annotations

from pathlib import Path

from keel.jobs.records import stored_outputs
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace
from tests.jobs.conftest import run_file, steps_of


def test_a_sweep_job_runs_trials_and_keeps_the_best(workspace: Workspace, project: Path) -> None:
    sweep = run_file(workspace, project / "sweep.yml")
    assert sweep.status == JobStatus.COMPLETED, sweep.status_reason
    trials = steps_of(workspace, sweep)
    assert len(trials) == 5
    assert {trial.name for trial in trials.values()} == {f"{sweep.name}_{n}" for n in range(5)}
    for trial in trials.values():
        assert 0.01 <= float(trial.params["lr"]) <= 0.9 and trial.params["depth"] in ("2", "4", "8")
        assert trial.metrics["score"].count == 4
    best_name = sweep.tags["keel.best_trial"]
    best = next(trial for trial in trials.values() if trial.name == best_name)
    assert best.tags["keel.best_trial"] == "true"
    assert best.metrics["score"].last == max(
        t.metrics["score"].last for t in trials.values() if t.status == JobStatus.COMPLETED
    )
    assert sweep.metrics["best_score"].last == best.metrics["score"].last
    assert (
        stored_outputs(workspace.store, sweep.id)["model"].digest
        == stored_outputs(workspace.store, best.id)["model"].digest
    )


def test_a_grid_sweep_step_feeds_its_best_output_downstream(workspace: Workspace, project: Path) -> None:
    pipeline = run_file(workspace, project / "sweep_pipeline.yml")
    assert pipeline.status == JobStatus.COMPLETED, pipeline.status_reason
    steps = steps_of(workspace, pipeline)
    trials = steps_of(workspace, steps["tune"])
    assert sorted(float(t.params["lr"]) for t in trials.values()) == [0.1, 0.3, 0.5]
    report = stored_outputs(workspace.store, steps["use_best"].id)["report"]
    assert (workspace.artifacts.local_path(report.uri or "") / "params.txt").read_text() == "0.3 4"


def test_early_termination_cancels_trials_with_the_reason(workspace: Workspace, project: Path) -> None:
    policy = (
        "early_termination={type: bandit, slack_amount: 0.0001, evaluation_interval: 1, delay_evaluation: 1}"
    )
    sweep = run_file(workspace, project / "sweep.yml", [policy, "limits.max_concurrent_trials=1"])
    assert sweep.status == JobStatus.COMPLETED
    stopped = [t for t in steps_of(workspace, sweep).values() if t.status == JobStatus.CANCELED]
    assert stopped, "a tight bandit policy should stop trials that trail the best"
    assert all((t.status_reason or "").startswith("early termination: bandit policy") for t in stopped)


def test_a_sweep_whose_trials_never_log_the_metric_fails(workspace: Workspace, project: Path) -> None:
    silent = (
        "trial.command=python trial.py --lr ${{search_space.lr}} --depth ${{search_space.depth}} "
        "--out ${{outputs.model}} --silent"
    )
    sweep = run_file(workspace, project / "sweep.yml", [silent, "limits.max_total_trials=2"])
    assert sweep.status == JobStatus.FAILED
    assert "no trial logged a usable value of score" in (sweep.status_reason or "")
