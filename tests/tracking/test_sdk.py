"""The tracking SDK end to end on a real embedded workspace."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import keel
from keel.errors import InvalidInput, NotFound
from keel.workspace import Workspace


def test_a_run_logs_params_metrics_tags_and_artifacts(sdk: Workspace, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"\x01\x02")
    with keel.start_run(experiment="flights", display_name="baseline", tags={"team": "ml"}) as run:
        keel.log_params({"lr": 0.1, "model": "rf"})
        keel.log_param("trees", 50)
        for epoch in range(5):
            keel.log_metric("loss", 1 / (epoch + 1), step=epoch)
        keel.log_metrics({"acc": 0.8, "f1": 0.7})
        keel.set_tag("stage", "dev")
        keel.log_artifact(tmp_path / "notes.txt")
        keel.log_artifacts(tmp_path / "model", artifact_path="model")
        keel.log_dict({"a": 1}, "config.json")
        keel.log_dict({"b": 2}, "config.yaml")
        keel.log_text("plain", "texts/readme.txt")
    job = keel.get_job(run.name)
    assert job.status == keel.JobStatus.COMPLETED
    assert job.display_name == "baseline"
    assert job.experiment_name == "flights"
    assert job.params == {"lr": "0.1", "model": "rf", "trees": "50"}
    assert job.metrics["loss"].count == 5 and job.metrics["loss"].min == 0.2
    assert job.tags["team"] == "ml" and job.tags["stage"] == "dev"
    root = Path(sdk.artifacts.local_path(job.artifact_location))
    assert (root / "notes.txt").read_text() == "hello"
    assert (root / "model" / "weights.bin").read_bytes() == b"\x01\x02"
    assert json.loads((root / "config.json").read_text()) == {"a": 1}
    assert yaml.safe_load((root / "config.yaml").read_text()) == {"b": 2}
    assert (root / "texts" / "readme.txt").read_text() == "plain"


def test_steps_default_to_counting_up_per_key(sdk: Workspace) -> None:
    with keel.start_run() as run:
        for value in (3.0, 2.0, 1.0):
            run.log_metric("loss", value)
        run.log_metric("other", 5.0, step=10)
        run.log_metric("other", 6.0)
    history = keel.get_metric_history(run.name, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert [p.step for p in keel.get_metric_history(run.name, "other")] == [10, 11]


def test_nested_runs_become_child_jobs(sdk: Workspace) -> None:
    with keel.start_run(experiment="sweep") as parent:
        for trial in range(3):
            with keel.start_run(display_name=f"trial {trial}") as child:
                child.log_metric("score", trial)
    children = keel.search_jobs(experiment="sweep", filter=f"attributes.run_id != '{parent.name}'")
    assert len(children) == 3
    assert {job.parent_name for job in children} == {parent.name}


def test_a_raising_block_ends_the_run_as_failed(sdk: Workspace) -> None:
    with pytest.raises(ZeroDivisionError), keel.start_run() as run:
        run.log_metric("before", 1.0)
        _ = 1 / 0
    job = keel.get_job(run.name)
    assert job.status == keel.JobStatus.FAILED
    assert "ZeroDivisionError" in (job.status_reason or "")
    assert job.metrics["before"].count == 1


def test_logging_without_a_run_starts_one_like_mlflow(sdk: Workspace) -> None:
    keel.log_metric("auto", 1.0)
    run = keel.active_run()
    assert run is not None
    keel.end_run()
    assert keel.get_job(run.name).metrics["auto"].last == 1.0
    assert keel.active_run() is None


def test_bad_values_fail_at_the_logging_line(sdk: Workspace) -> None:
    with keel.start_run() as run:
        with pytest.raises(InvalidInput, match="must be a number, got str"):
            run.log_metric("loss", "low")
        with pytest.raises(InvalidInput, match="must be a number"):
            run.log_metric("loss", None)
        with pytest.raises(InvalidInput, match="step must be an integer"):
            run.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="at most 6000"):
            run.log_param("huge", "x" * 7000)
        with pytest.raises(NotFound, match="no file"):
            run.log_artifact("/nonexistent/file.txt")
        with pytest.raises(InvalidInput, match=r"'\.\.'"):
            run.log_text("x", "../escape.txt")
        run.log_metric("numpy_like", True + 0.5)
    assert keel.get_job(run.name).status == keel.JobStatus.COMPLETED


def test_nan_round_trips_through_the_sdk(sdk: Workspace) -> None:
    with keel.start_run() as run:
        run.log_metric("m", math.nan)
        run.log_metric("m", math.inf)
    points = keel.get_metric_history(run.name, "m")
    assert math.isnan(points[0].value) and points[1].value == math.inf


def test_search_and_downsampled_history(sdk: Workspace) -> None:
    for lr in (0.1, 0.01):
        with keel.start_run(experiment="lrs") as run:
            run.log_param("lr", lr)
            for step in range(2000):
                run.log_metric("loss", lr * (2000 - step), step=step)
    best = keel.search_jobs(experiment="lrs", order_by="min(metrics.loss) ASC", max_results=1)
    assert best[0].params["lr"] == "0.01"  # minima at step 1999: 0.1 * 1 vs 0.01 * 1
    sampled = keel.get_metric_history(best[0], "loss", max_points=50)
    assert len(sampled) <= 50 and sampled[0].step == 0 and sampled[-1].step == 1999


def test_an_unended_run_in_a_script_is_closed_at_exit(workspace: Workspace, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import keel
            keel.set_workspace({str(workspace.config.root)!r})
            run = keel.start_run(name="clean_exit")
            for i in range(1000):
                run.log_metric("x", i)
            """
        )
    )
    failing = tmp_path / "crash.py"
    failing.write_text(
        textwrap.dedent(
            f"""
            import keel
            keel.set_workspace({str(workspace.config.root)!r})
            keel.start_run(name="crashed").log_metric("x", 1)
            raise SystemError("model diverged")
            """
        )
    )
    assert subprocess.run([sys.executable, str(script)], check=False).returncode == 0
    crashed = subprocess.run([sys.executable, str(failing)], capture_output=True, check=False)
    assert crashed.returncode == 1
    keel.set_workspace(workspace.config.root)
    clean = keel.get_job("clean_exit")
    assert clean.status == keel.JobStatus.COMPLETED and clean.metrics["x"].count == 1000
    died = keel.get_job("crashed")
    assert died.status == keel.JobStatus.FAILED and died.metrics["x"].count == 1


def test_a_process_started_for_a_job_logs_into_it(sdk: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with keel.start_run(name="outer_job") as outer:
        pass
    monkeypatch.setenv("KEEL_JOB_NAME", outer.name)
    with keel.start_run() as attached:
        attached.log_metric("from_step", 1.0)
    assert attached.name == "outer_job"
    assert keel.get_job("outer_job").metrics["from_step"].count == 1
