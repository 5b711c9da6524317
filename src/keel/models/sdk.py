"""The models SDK: ``keel.log_model`` and ``keel.load_model``.

with keel.start_run(experiment="flights"):
    model = RandomForestClassifier().fit(X, y)
    keel.log_model(model, "model", input_example=X.head(), registered_model_name="flights")

model = keel.load_model("models:/flights@champion")
model.predict(frame)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.models.registry import ModelVersion
from keel.models.scoring import LoadedModel


@dataclass(frozen=True)
class LoggedModelInfo:
    """What ``log_model`` wrote: where (``runs:/<job>/<path>``), and the version it registered."""

    job_name: str
    artifact_path: str
    model_uri: str
    flavors: list[str]
    signature: dict[str, Any] | None
    registered: ModelVersion | None = None


def log_model(
    model: Any,
    name: str = "model",
    *,
    flavor: str = "sklearn",
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModelInfo:
    """Save ``model`` in the MLflow format as the active run's artifacts under ``name`` (starting
    a run if none is active) and, with ``registered_model_name``, register it as a new version of
    that model, produced by the run's job. ``flavor="onnx"`` converts a scikit-learn model to
    ONNX, which scores without pickle."""
    from keel.artifacts import safe_relative_path
    from keel.models.mlflow_format import MLMODEL, parse_mlmodel
    from keel.models.registry import Request, register
    from keel.models.saving import save_model
    from keel.tracking import sdk

    artifact_path = safe_relative_path(name)
    run = sdk.active_run() or sdk.start_run()
    workspace = run._session.workspace  # the run's own workspace (an in-process step may use another)
    with tempfile.TemporaryDirectory(prefix="keel-model-") as scratch:
        folder = Path(scratch) / "model"
        written = save_model(
            model,
            folder,
            flavor=flavor,
            signature=signature,
            input_example=input_example,
            run_id=run.name,
            artifact_path=artifact_path,
        )
        flavors = list(parse_mlmodel((folder / MLMODEL).read_bytes(), MLMODEL).flavors)
        run.log_artifacts(folder, artifact_path=artifact_path)
    uri = f"runs:/{run.name}/{artifact_path}"
    version = None
    if registered_model_name is not None:
        request = Request(name=registered_model_name, path=uri, description=description, tags=tags)
        version, _ = register(workspace, request)
    return LoggedModelInfo(run.name, artifact_path, uri, flavors, written, version)


def load_model(reference: str, *, cache: str | Path | None = None) -> LoadedModel:
    """Open a registered version (``models:/NAME@ALIAS``, ``azureml:NAME:VERSION`` …) for scoring,
    its files checked against the hashes recorded at registration."""
    from keel.models.registry import resolve_model
    from keel.models.scoring import open_model
    from keel.tracking.sdk import current_workspace

    workspace = current_workspace()
    version = resolve_model(workspace, reference)
    return open_model(workspace, version, cache=Path(cache) if cache is not None else None)
