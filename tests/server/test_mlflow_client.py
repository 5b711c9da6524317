"""The unmodified ``mlflow`` client against a real ``keel server`` on a loopback socket.

One server (a subprocess running the ``keel server`` command) serves the whole
module; each test logs into its own experiment. Runs logged this way must be the
same kind of job as runs logged with Keel's SDK.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import keel
from keel.cli.main import app as keel_cli
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job
from keel.tracking.search import search_jobs
from keel.workspace import Workspace

mlflow = pytest.importorskip("mlflow")

pytestmark = [
    pytest.mark.slow,
    # scikit-learn 1.9 renamed log_loss's argument; MLflow 3's autolog still passes the
    # old name, and scikit-learn warns. Not Keel's to fix, and harmless here.
    pytest.mark.filterwarnings("ignore:`y_pred` was renamed to `y_proba`:FutureWarning"),
    # MLflow warns (in colour, hence the leading .*) while inferring the signature of the
    # sklearn flavour's own predict function; it is about MLflow's code, not the test's.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``keel server`` in a subprocess over a fresh workspace: (URL, workspace folder)."""
    folder = tmp_path_factory.mktemp("served") / ".keel"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(folder), "server"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, url)
        yield url, folder
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
    assert b"Traceback" not in errors, errors.decode()


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "keel server exited at start-up"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("keel server did not answer /health within 30 s")


@pytest.fixture
def tracking(server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """MLflow pointed at the server; yields the server's workspace, opened here too."""
    url, folder = server
    for name, value in {**QUIET, "MLFLOW_TRACKING_URI": url}.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(url)
    workspace = Workspace.open(folder)
    try:
        yield workspace
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # undoes the global (and its env var) for later tests
        workspace.close()


def _experiment(name: str) -> str:
    experiment_id: str = mlflow.MlflowClient().create_experiment(name)
    return experiment_id


def test_a_fluent_script_logs_everything(tracking: Workspace, tmp_path: Path) -> None:
    experiment_id = _experiment("fluent")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.svg").write_text("<svg/>")
    with mlflow.start_run(experiment_id=experiment_id, run_name="outer") as outer:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"model": "rf", "trees": 50})
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_metrics({"nan": math.nan, "inf": math.inf})
        mlflow.set_tag("team", "ml")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifacts(str(tmp_path / "plots"), artifact_path="plots")
        with mlflow.start_run(run_name="inner", nested=True) as inner:
            mlflow.log_metric("inner_metric", 3.0)
    client = mlflow.MlflowClient()
    run = client.get_run(outer.info.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "outer"
    assert run.data.params == {"lr": "0.1", "model": "rf", "trees": "50"}
    assert run.data.metrics["loss"] == 0.2 and math.isnan(run.data.metrics["nan"])
    assert run.data.metrics["inf"] == math.inf and run.data.tags["team"] == "ml"
    history = client.get_metric_history(outer.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(5)]
    names = sorted(f.path for f in client.list_artifacts(outer.info.run_id))
    assert names == ["notes.txt", "plots"]
    plots = client.download_artifacts(outer.info.run_id, "plots", str(tmp_path / "down"))
    assert (Path(plots) / "loss.svg").read_text() == "<svg/>"
    job = get_job(tracking.store, outer.info.run_id)
    child = get_job(tracking.store, inner.info.run_id)
    assert (job.type, job.display_name, job.status) == ("run", "outer", JobStatus.COMPLETED)
    assert child.parent_name == job.name and child.status == JobStatus.COMPLETED
    stored = tracking.artifacts.local_path(job.artifact_location) / "notes.txt"
    assert stored.read_text() == "hello"


def test_search_runs_filters_and_orders(tracking: Workspace) -> None:
    experiment_id = _experiment("searching")
    for index, model in enumerate(["rf", "lr", "rf", "rf"]):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"run{index}"):
            mlflow.log_param("model", model)
            mlflow.log_metric("acc", index / 10)
    found = mlflow.MlflowClient().search_runs(
        [experiment_id], "params.model = 'rf' and metrics.acc >= 0.2", order_by=["metrics.acc DESC"]
    )
    assert [run.info.run_name for run in found] == ["run3", "run2"]
    frame = mlflow.search_runs([experiment_id], order_by=["attributes.run_name ASC"])
    assert list(frame["tags.mlflow.runName"]) == ["run0", "run1", "run2", "run3"]


def test_autolog_logs_a_model_that_loads_back(tracking: Workspace) -> None:
    import mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    experiment_id = _experiment("autolog")
    features, target = load_iris(return_X_y=True)
    mlflow.sklearn.autolog(log_input_examples=False, silent=True)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            LogisticRegression(max_iter=300).fit(features, target)
    finally:
        mlflow.sklearn.autolog(disable=True)
    client = mlflow.MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.data.params["max_iter"] == "300"
    assert 0.9 < logged.data.metrics["training_accuracy_score"] <= 1.0
    [model] = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert model.status.to_int() == 2 and model.source_run_id == run.info.run_id  # READY
    assert {m.key for m in model.metrics} >= {"training_accuracy_score"}
    by_id = mlflow.sklearn.load_model(f"models:/{model.model_id}")
    by_run = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert list(by_id.predict(features[:5])) == list(by_run.predict(features[:5]))
    job = get_job(tracking.store, run.info.run_id)
    assert job.metrics["training_accuracy_score"].count == 1  # not doubled by the model link
    assert [i.name for i in job.inputs] == ["dataset"]


def test_mlflow_and_sdk_runs_are_the_same_kind_of_job(tracking: Workspace) -> None:
    from keel.tracking import sdk

    experiment_id = _experiment("both")
    with mlflow.start_run(experiment_id=experiment_id, run_name="from-mlflow") as run:
        mlflow.log_metric("score", 1.0)
    sdk.set_workspace(tracking.config.root)
    with keel.start_run(experiment="both", display_name="from-sdk") as sdk_run:
        keel.log_metric("score", 2.0)
    keel.flush()
    jobs = search_jobs(tracking.store, experiment_ids=[int(experiment_id)]).jobs
    assert {(j.name, j.display_name, j.type) for j in jobs} == {
        (run.info.run_id, "from-mlflow", "run"),
        (sdk_run.name, "from-sdk", "run"),
    }
    seen = mlflow.MlflowClient().search_runs([experiment_id], order_by=["metrics.score DESC"])
    assert [r.info.run_name for r in seen] == ["from-sdk", "from-mlflow"]
    listed = CliRunner().invoke(
        keel_cli, ["--workspace", str(tracking.config.root), "job", "list", "-o", "json"]
    )
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert rows[run.info.run_id]["type"] == rows[sdk_run.name]["type"] == "run"
    assert rows[run.info.run_id]["status"] == "completed"
