"""``keel.log_model`` writes what MLflow loads, logs it on the run, and registers it with lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import keel
from keel.errors import InvalidInput
from keel.models.aliases import set_alias
from keel.models.mlflow_format import parse_mlmodel
from keel.models.registry import resolve_model
from keel.workspace import Workspace

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


def _artifacts(workspace: Workspace, job: str, path: str) -> Path:
    run = keel.get_job(job)
    return workspace.artifacts.local_path(f"{run.artifact_location}/{path}")


def test_log_model_writes_an_mlflow_model_that_mlflow_loads(
    sdk: Workspace, fitted: Any, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    with keel.start_run(experiment="delays") as run:
        info = keel.log_model(fitted, "model", input_example=frame.head(5))
    assert (info.job_name, info.model_uri, info.registered) == (run.name, f"runs:/{run.name}/model", None)
    folder = _artifacts(sdk, run.name, "model")
    names = {p.name for p in folder.iterdir()}
    assert {"MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt"} <= names
    assert "input_example.json" in names
    mlmodel = parse_mlmodel((folder / "MLmodel").read_bytes(), "MLmodel")
    assert set(mlmodel.flavors) == {"python_function", "sklearn"}
    assert mlmodel.signature is not None
    assert [c["name"] for c in mlmodel.signature["inputs"]] == ["distance", "hour"]
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's own switch for pickles
    loaded = mlflow.pyfunc.load_model(str(folder))
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))


def test_log_model_registers_a_version_produced_by_the_run(
    sdk: Workspace, fitted: Any, frame: pd.DataFrame
) -> None:
    with keel.start_run(experiment="delays") as run:
        info = keel.log_model(
            fitted,
            "clf",
            input_example=frame.head(3),
            registered_model_name="delays",
            tags={"kind": "logreg"},
        )
        second = keel.log_model(fitted, "clf2", registered_model_name="delays")
    version = info.registered
    assert version is not None and second.registered is not None
    assert (version.name, version.version, version.job_name) == ("delays", "1", run.name)
    assert (version.source, version.tags) == (f"runs:/{run.name}/clf", {"kind": "logreg"})
    assert second.registered.version == "2" and second.registered.signature is None
    set_alias(sdk, "delays", "champion", "1")
    loaded = keel.load_model("models:/delays@champion")
    assert loaded.version == resolve_model(sdk, "azureml:delays:1")
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))


def test_log_model_without_a_run_starts_one_and_takes_mlflow_signatures(
    sdk: Workspace, fitted: Any, frame: pd.DataFrame
) -> None:
    from mlflow.models import infer_signature

    signature = infer_signature(frame.astype("float64"), fitted.predict(frame))
    info = keel.log_model(fitted, signature=signature, registered_model_name="delays")
    run = keel.active_run()
    assert run is not None and info.job_name == run.name
    assert info.registered is not None and info.registered.signature is not None
    assert [c["type"] for c in info.registered.signature["inputs"]] == ["double", "double"]


def test_onnx_models_are_converted_registered_and_load_in_mlflow_too(
    sdk: Workspace, fitted: Any, frame: pd.DataFrame
) -> None:
    import mlflow.pyfunc

    with keel.start_run(experiment="delays") as run:
        info = keel.log_model(
            fitted, "onnx", flavor="onnx", input_example=frame.head(3), registered_model_name="delays-onnx"
        )
    assert info.flavors == ["python_function", "onnx"]
    np.testing.assert_array_equal(keel.load_model("delays-onnx@latest").predict(frame), fitted.predict(frame))
    by_mlflow = mlflow.pyfunc.load_model(str(_artifacts(sdk, run.name, "onnx"))).predict(frame)
    np.testing.assert_array_equal(np.asarray(by_mlflow).ravel(), fitted.predict(frame))


def test_log_model_refuses_what_it_cannot_save(sdk: Workspace, fitted: Any, frame: pd.DataFrame) -> None:
    with keel.start_run(experiment="delays"):
        with pytest.raises(InvalidInput, match="has no predict"):
            keel.log_model(object())
        with pytest.raises(InvalidInput, match="unknown flavor"):
            keel.log_model(fitted, flavor="torch")
        with pytest.raises(InvalidInput, match="signature must be"):
            keel.log_model(fitted, signature=["x"])
        with pytest.raises(InvalidInput, match="needs the number of input columns"):
            keel.log_model(fitted, "no-width", flavor="onnx")
