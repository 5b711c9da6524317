"""Python components and pipelines run by Keel: in-process (the fast path) and as processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import keel
from keel.jobs.records import stored_outputs
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace
from tests.jobs.conftest import keel_cli, steps_of
from tests.jobs.python_shop import ORDERS, components, pipelines


@pytest.fixture
def session(sdk: Workspace) -> Workspace:
    return sdk


def test_a_python_pipeline_runs_in_process_with_outputs_and_lineage(session: Workspace) -> None:
    job = keel.submit(pipelines.orders(raw=str(ORDERS), label="big"))
    assert job.status == JobStatus.COMPLETED, job.status_reason
    steps = steps_of(session, job)
    assert set(steps) == {"prep", "scoring"}
    outputs = stored_outputs(session.store, job.id)
    assert outputs["total"].value == pytest.approx(
        sum(
            float(r.split(",")[1])
            for r in ORDERS.read_text().splitlines()[1:]
            if float(r.split(",")[1]) >= 10
        )
    )
    clean = session.artifacts.local_path(outputs["clean"].uri or "") / "orders.csv"
    assert clean.read_text().startswith(ORDERS.read_text().splitlines()[0])
    scoring_input = next(item for item in steps["scoring"].inputs if item.name == "data")
    assert scoring_input.uri == f"azureml://jobs/{steps['prep'].name}/outputs/clean"


def test_a_second_submit_reuses_deterministic_steps(session: Workspace) -> None:
    first = keel.submit(pipelines.orders(raw=str(ORDERS)))
    again = keel.submit(pipelines.orders(raw=str(ORDERS)))
    assert {step.reused_from for step in steps_of(session, again).values()} == {
        step.name for step in steps_of(session, first).values()
    }


def test_metrics_logged_inside_an_in_process_step_land_on_it(session: Workspace) -> None:
    @keel.component
    def learns(epochs: int) -> float:
        for epoch in range(epochs):
            keel.log_metric("loss", 1 / (epoch + 1), step=epoch)
        return 0.5

    @keel.pipeline
    def training(epochs: int = 3):  # type: ignore[no-untyped-def]
        return {"score": learns(epochs=epochs).outputs.output}

    job = keel.submit(training())
    (step,) = steps_of(session, job).values()
    assert step.metrics["loss"].count == 3 and step.metrics["loss"].min == pytest.approx(1 / 3)


def test_an_exception_fails_the_step_with_its_message(session: Workspace) -> None:
    @keel.pipeline
    def doomed():  # type: ignore[no-untyped-def]
        components.explode(message="the model diverged")

    job = keel.submit(doomed())
    assert job.status == JobStatus.FAILED
    (step,) = steps_of(session, job).values()
    assert "RuntimeError: the model diverged" in (step.status_reason or "")
    log = session.artifacts.read_bytes(f"{step.artifact_location}/user_logs/std_log.txt").decode()
    assert "Traceback" in log and "the model diverged" in log


def test_an_exported_python_pipeline_runs_from_the_command_line(session: Workspace, tmp_path: Path) -> None:
    """The exported YAML is portable: its steps run as `python -m keel.function` processes."""
    job = keel.submit(pipelines.orders(raw=str(ORDERS), label="two words"))
    exported = tmp_path / "orders.yml"
    result = keel_cli(session, "job", "export", job.name, "--file", str(exported))
    assert result.returncode == 0, result.stderr
    ran = keel_cli(
        session,
        "job",
        "create",
        "-f",
        str(exported),
        "--wait",
        "--set",
        "settings.force_rerun=true",
        "-o",
        "json",
    )
    assert ran.returncode == 0, ran.stderr
    again = json.loads(ran.stdout)
    totals = [
        stored_outputs(session.store, keel.get_job(name).id)["total"].value
        for name in (job.name, again["name"])
    ]
    assert totals[0] == totals[1]
    scoring = next(
        s for s in steps_of(session, keel.get_job(again["name"])).values() if s.step_name == "scoring"
    )
    log = session.artifacts.read_bytes(f"{scoring.artifact_location}/user_logs/std_log.txt").decode()
    assert "python -m keel.function" in log and "'two words'" in log


def test_submit_without_waiting_hands_the_job_to_a_runner(session: Workspace) -> None:
    import time

    job = keel.submit(pipelines.orders(raw=str(ORDERS)), wait=False)
    assert job.status == JobStatus.QUEUED
    deadline = time.monotonic() + 60
    while not keel.get_job(job.name).status.is_terminal:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert keel.get_job(job.name).status == JobStatus.COMPLETED
