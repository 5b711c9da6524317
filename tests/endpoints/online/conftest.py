"""Online endpoint fixtures: real models, real scoring scripts, and a real `keel up` on loopback.

The gateway runs as its own process (``python -m keel.cli.main up --port 0``),
exactly as a user starts it; tests create endpoints and deployments through the
domain functions (or the CLI) in the same workspace and talk to the gateway over
HTTP. Nothing is mocked.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel.workspace import Workspace, resolve_workspace

COLUMNS = ["distance", "dep_delay", "hour", "month"]
SCORE_PY = """
import json
import os
import pickle
import time

import pandas as pd

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)
    print("init done, model dir", os.environ["AZUREML_MODEL_DIR"])


def run(raw_data):
    data = json.loads(raw_data)
    if isinstance(data, dict) and data.get("fail"):
        raise ValueError("asked to fail")
    if isinstance(data, dict) and data.get("sleep"):
        time.sleep(float(data["sleep"]))
        return {"slept": data["sleep"]}
    if isinstance(data, dict) and data.get("crash"):
        os._exit(3)
    table = data["input_data"]
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    return model.predict(frame).tolist()
"""
BROKEN_INIT_PY = """
def init():
    raise RuntimeError("the model file is missing")


def run(raw_data):
    return []
"""


def training_frame() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=COLUMNS)
    labels = (frame["distance"] + frame["dep_delay"] > 0).astype("int64")
    return frame, labels


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MLflow model folder, a custom model (a pickle) with its scoring scripts."""
    from keel.models.saving import save_model

    root = tmp_path_factory.mktemp("models")
    frame, labels = training_frame()
    estimator = LogisticRegression().fit(frame, labels)
    save_model(estimator, root / "mlflow_model", input_example=frame.head(5))
    (root / "custom_model").mkdir()
    with open(root / "custom_model" / "model.pkl", "wb") as handle:
        pickle.dump(estimator, handle)
    (root / "src").mkdir()
    (root / "src" / "score.py").write_text(SCORE_PY)
    (root / "broken").mkdir()
    (root / "broken" / "score.py").write_text(BROKEN_INIT_PY)
    return {
        "mlflow": root / "mlflow_model",
        "custom": root / "custom_model",
        "code": root / "src",
        "broken": root / "broken",
        "root": root,
    }


class Served:
    """A workspace with `keel up` running on it."""

    def __init__(self, root: Path, models: dict[str, Path]) -> None:
        self.root = root
        self.models = models
        self.workspace = Workspace(resolve_workspace(root))
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.output = root.parent / "keel-up.log"
        self.keys: dict[str, str] = {}

    def start(self, *extra: str) -> Served:
        from keel.endpoints.online.gateways import find_gateway

        env = {**os.environ, "KEEL_WORKSPACE": str(self.root)}
        command = [sys.executable, "-m", "keel.cli.main", "up", "--port", "0", *extra]
        self.output = self.root.parent / f"keel-up-{time.monotonic_ns()}.log"
        with open(self.output, "w") as log:  # a file, not a pipe: a full pipe would stall the gateway
            self.process = subprocess.Popen(command, env=env, stderr=log, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"keel up exited: {self.stop()}")
            found = find_gateway(self.workspace)
            if found is not None and found[1] == self.process.pid:
                self.url = found[0]
                self._wait_live()
                return self
            time.sleep(0.05)
        raise AssertionError("keel up did not start within 60 s")

    def _wait_live(self) -> None:
        import httpx

        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/v2/health/live", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the gateway never answered /v2/health/live")

    def stop(self) -> str:
        """Stop `keel up` the way Ctrl-C does; returns what it printed."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        return self.output.read_text()

    def endpoint(self, name: str, *, auth_mode: str = "key") -> None:
        from keel.endpoints.online.records import create_endpoint
        from keel.endpoints.online.specs import EndpointSpec

        create_endpoint(self.workspace, EndpointSpec(name=name, auth_mode=auth_mode))  # type: ignore[arg-type]

    def deploy(
        self, endpoint: str, name: str, *, wait: bool = True, all_traffic: bool = False, **spec: Any
    ) -> Any:
        """Create a deployment (MLflow model, no code, unless ``spec`` says otherwise)."""
        from keel.endpoints.online.client import wait_for_deployment
        from keel.endpoints.online.deployments import create_deployment
        from keel.endpoints.online.specs import DeploymentSpec

        document = {"name": name, "endpoint_name": endpoint, "model": str(self.models["mlflow"]), **spec}
        created = create_deployment(
            self.workspace,
            DeploymentSpec.model_validate(document),
            base=self.models["root"],
            all_traffic=all_traffic,
        )
        if not wait:
            return created
        settled = wait_for_deployment(self.workspace, endpoint, name, created.revision, timeout=120)
        assert settled is not None and settled.state == "ready", (settled, self.logs(endpoint, name))
        return settled

    def scripted(self, endpoint: str, name: str, **spec: Any) -> Any:
        """A deployment of the pickled model with the Azure-style scoring script."""
        code = {"code": str(self.models["code"]), "scoring_script": "score.py"}
        return self.deploy(endpoint, name, model=str(self.models["custom"]), code_configuration=code, **spec)

    def traffic(self, endpoint: str, live: dict[str, int], mirror: dict[str, int] | None = None) -> None:
        from keel.endpoints.online.records import update_endpoint

        update_endpoint(self.workspace, endpoint, traffic=live, mirror_traffic=mirror)

    def key(self, endpoint: str) -> str:
        """The endpoint's primary key (or a fresh token), looked up once per endpoint."""
        from keel.endpoints.online.records import bearer_credential

        if endpoint not in self.keys:
            self.keys[endpoint] = bearer_credential(self.workspace, endpoint)
        return self.keys[endpoint]

    def headers(self, endpoint: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(endpoint)}", **extra}

    def logs(self, endpoint: str, name: str) -> str:
        from keel.endpoints.online.client import read_logs

        return read_logs(self.workspace, endpoint, name, 50)

    def settle(self, seconds: float = 0.6) -> None:
        """Give the gateway a few polls to see a change in the store."""
        time.sleep(seconds)


def rows(count: int = 1, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [[float(v) for v in row] for row in rng.normal(size=(count, len(COLUMNS)))]


def expected(models: dict[str, Path], data: list[list[float]]) -> list[int]:
    with open(models["custom"] / "model.pkl", "rb") as handle:
        estimator = pickle.load(handle)
    return [int(v) for v in estimator.predict(pd.DataFrame(data, columns=COLUMNS))]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Iterator[Served]:
    """One `keel up` for a test module; each test uses endpoints of its own."""
    host = Served(tmp_path_factory.mktemp("served") / ".keel", models).start()
    yield host
    host.stop()
    host.workspace.close()


@pytest.fixture
def fresh(tmp_path: Path, models: dict[str, Path]) -> Iterator[Served]:
    """A workspace of the test's own; the test starts (and may restart) `keel up` itself."""
    host = Served(tmp_path / ".keel", models)
    yield host
    host.stop()
    host.workspace.close()
