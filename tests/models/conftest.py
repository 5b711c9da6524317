"""Model registry fixtures: a workspace on each database, a fitted model and its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel.store import Store
from keel.workspace import Workspace, WorkspaceConfig


@pytest.fixture
def registry(store: Store, tmp_path: Path) -> Workspace:
    """A workspace over the ``store`` fixture's database (SQLite, then PostgreSQL)."""
    config = WorkspaceConfig(
        root=tmp_path / ".keel",
        database_url=store.engine.url.render_as_string(hide_password=False),
        artifacts_url=(tmp_path / "artifacts").as_uri(),
    )
    return Workspace(config, _store=store)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"distance": rng.random(60) * 1000, "hour": rng.integers(0, 24, 60)})


@pytest.fixture
def fitted(frame: pd.DataFrame) -> Any:
    labels = (frame["distance"] > 500).astype(int)
    return LogisticRegression().fit(frame, labels)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A custom model: a folder of files Keel knows nothing about."""
    path = tmp_path / "custom"
    (path / "weights").mkdir(parents=True)
    (path / "weights" / "w.bin").write_bytes(b"\x00\x01weights")
    (path / "score.cfg").write_text("threshold=0.5\n")
    return path
