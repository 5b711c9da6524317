"""Batch endpoint fixtures: real scikit-learn models in the MLflow format, real Parquet and CSV,
workspaces on SQLite and PostgreSQL, and scoring scripts written as files."""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from keel.store import Store
from keel.workspace import Workspace, WorkspaceConfig

FEATURES = ["distance", "hour", "delay"]


@dataclass(frozen=True)
class Models:
    """One trained classifier, saved three ways."""

    estimator: LogisticRegression
    mlflow_dir: Path  # MLflow format with a signature: no-code scoring
    custom_dir: Path  # just model.pkl: a custom_model that needs a script
    frame: pd.DataFrame  # rows to score


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from keel.models.saving import save_model

    root = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.standard_normal((2_000, 3)), columns=FEATURES)
    labels = (frame.distance + frame.delay > 0).astype(int)
    estimator = LogisticRegression().fit(frame, labels)
    save_model(estimator, root / "mlflow", input_example=frame.head(3))
    (root / "custom").mkdir()
    (root / "custom" / "model.pkl").write_bytes(pickle.dumps(estimator))
    return Models(estimator, root / "mlflow", root / "custom", frame)


@pytest.fixture
def space(store: Store, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on the ``store`` fixture's database (SQLite, then PostgreSQL)."""
    config = WorkspaceConfig(
        root=tmp_path / "ws", database_url=store.url, artifacts_url=(tmp_path / "artifacts").as_uri()
    )
    yield Workspace(config, _store=store)


def write_parquet(path: Path, frame: pd.DataFrame, *, row_group_size: int = 500) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


SCORE_ROWS = """
import os
import pickle

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)
    print("init done", flush=True)


def run(mini_batch):
    return model.predict(mini_batch)
"""


def endpoint_file(folder: Path, name: str = "flights-batch") -> Path:
    return write(
        folder / "endpoint.yml",
        f"""
        $schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json
        name: {name}
        description: scores flights
        auth_mode: aad_token
        """,
    )


def deployment_file(
    folder: Path, name: str, model: str | Path, *, script: str | None = None, **settings: object
) -> Path:
    """A deployment YAML (``type: model`` with ``settings:``); ``script`` adds code_configuration."""
    lines = [
        "$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json",
        f"name: {name}",
        "endpoint_name: flights-batch",
        "type: model",
        f"model: {model}",
        "compute: azureml:cpu-cluster",
    ]
    if script is not None:
        write(folder / "src" / f"{name}.py", script)
        lines += ["code_configuration:", "  code: ./src", f"  scoring_script: {name}.py"]
    retry = {key: settings.pop(key) for key in ("max_retries", "timeout") if key in settings}
    instance_count = settings.pop("instance_count", None)
    if instance_count is not None:
        lines += ["resources:", f"  instance_count: {instance_count}"]
    lines.append("settings:")
    for key, value in {"logging_level": "debug", **settings}.items():
        lines.append(f"  {key}: {value}")
    if retry:
        lines.append("  retry_settings:")
        lines += [f"    {key}: {value}" for key, value in retry.items()]
    return write(folder / f"{name}.yml", "\n".join(lines) + "\n")
