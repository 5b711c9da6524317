"""The unmodified ``mlflow`` client's model registry calls against a real ``keel server``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from keel.models.lineage import model_lineage
from keel.models.registry import resolve_model
from keel.models.scoring import open_model
from keel.workspace import Workspace

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``keel server`` in a subprocess over a fresh workspace: (URL, workspace folder)."""
    folder = tmp_path_factory.mktemp("registry") / ".keel"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    command = [
        sys.executable,
        "-m",
        "keel.cli.main",
        "--workspace",
        str(folder),
        "server",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            assert process.poll() is None and time.monotonic() < deadline, "keel server did not start"
            time.sleep(0.1)
        yield url, folder
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
    assert b"Traceback" not in errors, errors.decode()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def tracking(server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    url, folder = server
    for name, value in {
        **QUIET,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
    }.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(url)
    workspace = Workspace.open(folder)
    try:
        yield workspace
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        workspace.close()


def test_log_model_registers_and_aliases_resolve_both_ways(
    tracking: Workspace, fitted: Any, frame: pd.DataFrame
) -> None:
    mlflow.set_experiment("registry")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            fitted, name="model", registered_model_name="flights", serialization_format="cloudpickle"
        )
        again = mlflow.sklearn.log_model(fitted, name="model-2", registered_model_name="flights")  # skops
    assert (info.registered_model_version, again.registered_model_version) == ("1", "2")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("flights", "champion", "1")
    by_alias = client.get_model_version_by_alias("flights", "champion")
    assert (by_alias.version, by_alias.run_id, by_alias.status) == ("1", run.info.run_id, "READY")
    loaded = mlflow.pyfunc.load_model("models:/flights@champion")  # downloaded through the proxy
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))
    ours = resolve_model(tracking, "models:/flights@champion")
    assert (ours.version, ours.job_name, ours.type) == ("1", run.info.run_id, "mlflow_model")
    np.testing.assert_array_equal(open_model(tracking, ours).predict(frame), fitted.predict(frame))
    assert model_lineage(tracking, ours) == []  # an interactive run read no registered data
    latest = resolve_model(tracking, "azureml:flights@latest")
    np.testing.assert_array_equal(open_model(tracking, latest).predict(frame), fitted.predict(frame))
    client.delete_registered_model_alias("flights", "champion")
    with pytest.raises(MlflowException, match="has no alias @champion"):
        client.get_model_version_by_alias("flights", "champion")


def test_registry_reads_and_updates(tracking: Workspace, fitted: Any) -> None:
    client = mlflow.MlflowClient()
    client.create_registered_model("described", tags={"team": "delays"}, description="first")
    with pytest.raises(MlflowException, match="already exists"):
        client.create_registered_model("described")
    mlflow.set_experiment("registry-reads")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(fitted, name="m", registered_model_name="described")
    model_uri = f"runs:/{run.info.run_id}/m"
    second = mlflow.register_model(model_uri, "described")
    assert second.version == "2"
    client.update_registered_model("described", description="better")
    client.update_model_version("described", "2", description="second try")
    client.set_model_version_tag("described", "2", "validated", "yes")
    client.set_registered_model_tag("described", "owner", "ops")
    found = client.get_registered_model("described")
    assert (found.description, found.tags) == ("better", {"team": "delays", "owner": "ops"})
    assert [v.version for v in found.latest_versions] == ["2"]
    version = client.get_model_version("described", "2")
    assert (version.description, version.tags) == ("second try", {"validated": "yes"})
    searched = client.search_model_versions("name = 'described'")
    assert sorted(v.version for v in searched) == ["1", "2"]
    assert "described" in [m.name for m in client.search_registered_models("name LIKE 'desc%'")]
    assert client.get_model_version_download_uri("described", "1").startswith("mlflow-artifacts:/cas/")
    assert resolve_model(tracking, "described:2").tags == {"validated": "yes"}
    with pytest.raises(MlflowException, match="registers only files it stores"):
        client.create_model_version("described", source="/etc")
    with pytest.raises(MlflowException, match="no version 9 of model described"):
        client.get_model_version("described", "9")
