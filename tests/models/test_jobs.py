"""Models produced by real jobs: job outputs, keel.log_model and mlflow.sklearn.log_model inside a
job, each linked to the job and, through it, to the data asset versions it read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.data.assets import get_asset
from keel.models.lineage import model_lineage
from keel.models.registry import Request, list_models, register, resolve_model
from keel.tracking.entities import Job, JobStatus
from keel.workspace import Workspace
from tests.jobs.conftest import keel_cli, run_file

pytestmark = [pytest.mark.slow]

INGEST = """\
command: cp ${{inputs.source}}/*.csv ${{outputs.landed}}/
inputs:
  source: {type: uri_folder, path: ./raw}
outputs:
  landed: {type: uri_folder, name: flights}
experiment_name: delays
"""

TRAIN = """\
command: python train.py --data ${{inputs.data}} --out ${{outputs.model}}
code: ./src
inputs:
  data: {type: uri_folder, path: azureml:flights@latest}
outputs:
  model: {type: uri_folder}
experiment_name: delays
"""

TRAIN_SCRIPT = """\
import argparse, os, pickle
import pandas as pd
from sklearn.linear_model import LogisticRegression
import keel
import mlflow.sklearn

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--out")
args = parser.parse_args()
frame = pd.read_csv(os.path.join(args.data, "jan.csv"))
features = frame[["distance", "hour"]].astype("float64")
model = LogisticRegression().fit(features, frame["late"])
with open(os.path.join(args.out, "model.pkl"), "wb") as handle:
    pickle.dump(model, handle)
keel.log_model(model, "keel-model", input_example=features.head(2), registered_model_name="delays-sdk")
with mlflow.start_run():  # resumes this job's run (MLFLOW_RUN_ID), as scripts written for Azure ML do
    mlflow.sklearn.log_model(
        model, name="mlflow-model", registered_model_name="delays-mlflow", serialization_format="cloudpickle"
    )
"""


@pytest.fixture
def trained(workspace: Workspace, tmp_path: Path) -> tuple[Job, Job]:
    """An ingest job that produces flights:1, and a training job that reads it: (ingest, train)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = ["distance,hour,late"] + [f"{100 * i},{i % 24},{int(i % 3 == 0)}" for i in range(30)]
    (raw / "jan.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN_SCRIPT)
    (tmp_path / "ingest.yml").write_text(INGEST)
    (tmp_path / "train.yml").write_text(TRAIN)
    ingest = run_file(workspace, tmp_path / "ingest.yml")
    assert ingest.status == JobStatus.COMPLETED, ingest.status_reason
    train = run_file(workspace, tmp_path / "train.yml")
    assert train.status == JobStatus.COMPLETED, train.status_reason
    return ingest, train


def test_models_from_jobs_carry_their_lineage(workspace: Workspace, trained: tuple[Job, Job]) -> None:
    ingest, train = trained
    assert get_asset(workspace, "flights").job_name == ingest.name
    expected = [
        (0, train.name, "data", "azureml:flights:1", ingest.name),
        (1, ingest.name, "source", str(workspace.config.root.parent / "raw"), None),
    ]
    by_sdk = resolve_model(workspace, "delays-sdk@latest")  # keel.log_model inside the job
    by_mlflow = resolve_model(workspace, "models:/delays-mlflow/1")  # mlflow.sklearn.log_model, same job
    output, created = register(workspace, Request("delays", f"azureml://jobs/{train.name}/outputs/model"))
    assert created and output.type == "custom_model"
    logged = f"azureml://jobs/{train.name}/outputs/artifacts/paths/keel-model"  # the run's artifacts
    from_artifacts, _ = register(workspace, Request("from-artifacts", logged))
    assert from_artifacts.digest == by_sdk.digest  # the same files keel.log_model registered
    local = workspace.config.root.parent / "src"  # any files, said to come from the job
    declared, _ = register(workspace, Request("declared", str(local), job_name=train.name))
    for version in (by_sdk, by_mlflow, output, from_artifacts, declared):
        assert version.job_name == train.name, version
        hops = [(h.depth, h.job, h.input, h.source, h.produced_by) for h in model_lineage(workspace, version)]
        assert hops == expected, version.name
    assert by_sdk.type == by_mlflow.type == "mlflow_model"
    assert by_mlflow.source is not None and by_mlflow.source.startswith("models:/m-")


def test_the_cli_registers_job_outputs_and_shows_the_chain(
    workspace: Workspace, trained: tuple[Job, Job]
) -> None:
    ingest, train = trained
    created = keel_cli(
        workspace, "model", "create", "--name", "delays", "--from-job", train.name, "--output-name", "model"
    )
    assert created.returncode == 0, created.stderr
    assert "registered model delays:1" in created.stdout
    again = keel_cli(
        workspace, "model", "create", "--name", "delays", "--from-job", train.name, "--output-name", "model"
    )
    assert "already registered, unchanged: model delays:1" in again.stdout, again.stderr
    shown = keel_cli(workspace, "model", "show", "azureml:delays@latest")
    assert shown.returncode == 0, shown.stderr
    assert f"model delays:1 ← job {train.name}" in shown.stdout
    assert "data ← azureml:flights:1" in shown.stdout and f"job {ingest.name}" in shown.stdout
    as_json = json.loads(keel_cli(workspace, "model", "show", "delays:1", "-o", "json").stdout)
    assert as_json["job"] == train.name and as_json["lineage"][0]["produced_by"] == ingest.name
    logged = keel_cli(
        workspace,
        "model",
        "create",
        "--name",
        "from-logged",
        "--from-job",
        train.name,
        "--output-name",
        "mlflow-model",
    )
    assert logged.returncode == 0, logged.stderr  # not an output: the job's MLflow logged model of that name
    assert resolve_model(workspace, "from-logged:1").type == "mlflow_model"
    missing = keel_cli(
        workspace, "model", "create", "--name", "x", "--from-job", train.name, "--output-name", "nope"
    )
    assert (
        missing.returncode == 1 and "has no output, logged model or artifact folder 'nope'" in missing.stderr
    )
    assert "Traceback" not in missing.stderr
    assert {m.name for m in list_models(workspace)} == {
        "delays",
        "delays-sdk",
        "delays-mlflow",
        "from-logged",
    }
