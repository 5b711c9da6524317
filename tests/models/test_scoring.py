"""Opening registered models: hash checks before unpickling, flavors, signatures, errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from keel.errors import Conflict, InvalidInput
from keel.models.registry import ModelVersion, Request, register
from keel.models.saving import save_model
from keel.models.scoring import open_model
from keel.workspace import Workspace
from tests.models.canary import Canary

pytestmark = [
    # MLflow warns (in colour) about its own type hints when mlflow.pyfunc is imported.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


def _stored(workspace: Workspace, version: ModelVersion, relative: str) -> Path:
    return workspace.artifacts.local_path(version.path.split("/paths/", 1)[1]) / relative


def _saved(tmp_path: Path, model: Any, frame: pd.DataFrame, **options: Any) -> Path:
    target = tmp_path / f"saved-{len(list(tmp_path.glob('saved-*')))}"
    save_model(model, target, input_example=frame.head(3), **options)
    return target


def test_a_keel_saved_sklearn_model_scores_natively(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    version, _ = register(workspace, Request("delays", str(_saved(tmp_path, fitted, frame))))
    loaded = open_model(workspace, version)
    assert version.flavors == ["python_function", "sklearn"]
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))
    pd.testing.assert_frame_equal(loaded.input_example, frame.head(3).reset_index(drop=True))
    assert loaded.signature is not None and loaded.signature.names == ["distance", "hour"]
    reordered = frame[["hour", "distance"]].assign(extra="ignored")
    np.testing.assert_array_equal(loaded.predict(reordered), fitted.predict(frame))


def test_inputs_are_checked_against_the_signature_naming_every_bad_column(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    version, _ = register(workspace, Request("delays", str(_saved(tmp_path, fitted, frame))))
    loaded = open_model(workspace, version)
    with pytest.raises(InvalidInput, match=r"missing column 'hour'"):
        loaded.validate(frame[["distance"]])
    bad = frame.assign(distance=["far"] * len(frame), hour=frame["hour"] * 1.5)
    with pytest.raises(InvalidInput) as caught:
        loaded.predict(bad)
    assert "'distance' should be double, got" in caught.value.message
    assert "'hour' should be long, got float64" in caught.value.message
    widened = loaded.validate(frame.assign(distance=frame["distance"].astype("int32")))
    assert widened["distance"].dtype == np.float64  # int -> double loses nothing
    with pytest.raises(InvalidInput, match="has missing values"):
        loaded.validate(frame.assign(hour=frame["hour"].where(frame["hour"] > 3)))


def test_string_columns_are_checked_on_empty_and_filled_frames(workspace: Workspace, tmp_path: Path) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    frame = pd.DataFrame({"carrier": ["UA", "AA", "DL", "UA"], "distance": [100.0, 2000.0, 700.0, 300.0]})
    encode = make_column_transformer((OrdinalEncoder(), ["carrier"]), remainder="passthrough")
    fitted = make_pipeline(encode, LogisticRegression()).fit(frame, [0, 1, 0, 1])
    version, _ = register(workspace, Request("carriers", str(_saved(tmp_path, fitted, frame))))
    loaded = open_model(workspace, version)
    assert list(loaded.validate(frame.head(0)).columns) == ["carrier", "distance"]
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))
    with pytest.raises(InvalidInput, match="'carrier' should be string"):
        loaded.validate(frame.assign(carrier=[1, 2, 3, 4]))


def test_a_changed_stored_pickle_is_named_and_never_unpickled(workspace: Workspace, tmp_path: Path) -> None:
    """The canary writes its marker when unpickled; the altered pickle names another marker."""
    marker, altered = tmp_path / "hatched-A", tmp_path / "hatched-B"
    folder = tmp_path / "canary"
    save_model(Canary(str(marker)), folder)
    version, _ = register(workspace, Request("canary", str(folder)))
    stored = _stored(workspace, version, "model.pkl")
    data = stored.read_bytes()
    assert pickle.loads(data) and marker.exists()  # the control: this pickle does hatch
    marker.unlink()
    stored.write_bytes(data.replace(b"hatched-A", b"hatched-B"))  # still a valid pickle
    with pytest.raises(Conflict) as caught:
        open_model(workspace, version, cache=tmp_path / "cache").predict(pd.DataFrame({"x": [1]}))
    assert "model.pkl" in caught.value.message and "nothing was loaded" in caught.value.message
    assert not marker.exists() and not altered.exists()


def test_a_pickle_that_cannot_be_loaded_is_one_clear_error(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    (folder / "model.pkl").write_bytes(b"not a pickle at all")
    version, _ = register(workspace, Request("odd", str(folder)))
    with pytest.raises(InvalidInput, match=r"model\.pkl could not be unpickled"):
        open_model(workspace, version).predict(pd.DataFrame({"x": [1.0]}))


def test_a_changed_cached_copy_is_fetched_again_from_the_store(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    version, _ = register(workspace, Request("delays", str(_saved(tmp_path, fitted, frame))))
    cache = tmp_path / "cache"
    first = open_model(workspace, version, cache=cache)
    (first.directory / "model.pkl").write_bytes(b"tampered")
    (first.directory / "extra.py").write_text("import os\n")
    again = open_model(workspace, version, cache=cache)
    assert not (again.directory / "extra.py").exists()
    np.testing.assert_array_equal(again.predict(frame), fitted.predict(frame))


def test_a_changed_manifest_is_refused(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    version, _ = register(workspace, Request("delays", str(_saved(tmp_path, fitted, frame))))
    manifest = workspace.artifacts.local_path(version.manifest_uri)
    lines = manifest.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["hash"] = "sha256:" + "0" * 64
    manifest.write_text("\n".join([lines[0], json.dumps(entry), *lines[2:]]) + "\n")
    with pytest.raises(Conflict, match="manifest of model delays:1 no longer matches"):
        open_model(workspace, version)


def test_a_custom_model_needs_a_scoring_script(workspace: Workspace, folder: Path) -> None:
    version, _ = register(workspace, Request("scorer", str(folder)))
    loaded = open_model(workspace, version)
    assert sorted(p.name for p in loaded.directory.iterdir()) == ["score.cfg", "weights"]
    with pytest.raises(InvalidInput, match="needs a scoring script"):
        loaded.predict(pd.DataFrame({"x": [1.0]}))


def test_onnx_scores_without_any_pickle(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path
) -> None:
    saved = _saved(tmp_path, fitted, frame, flavor="onnx")
    version, _ = register(workspace, Request("delays-onnx", str(saved)))
    assert "onnx" in version.flavors and not list(saved.glob("*.pkl"))
    loaded = open_model(workspace, version)
    np.testing.assert_array_equal(loaded.predict(frame), fitted.predict(frame))
    _stored(workspace, version, "model.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(Conflict, match=r"model\.onnx"):
        open_model(workspace, version, cache=tmp_path / "other-cache")


@pytest.mark.parametrize("serialization", ["skops", "cloudpickle"])
def test_models_saved_by_mlflow_score_natively(
    workspace: Workspace, fitted: Any, frame: pd.DataFrame, tmp_path: Path, serialization: str
) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    target = tmp_path / "by-mlflow"
    signature = infer_signature(frame.astype("float64"), fitted.predict(frame))
    mlflow.sklearn.save_model(fitted, target, serialization_format=serialization, signature=signature)
    version, _ = register(workspace, Request("by-mlflow", str(target)))
    assert version.type == "mlflow_model" and "sklearn" in version.flavors
    np.testing.assert_array_equal(open_model(workspace, version).predict(frame), fitted.predict(frame))


def test_python_function_models_load_through_mlflow(
    workspace: Workspace, frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    target = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(target, python_model=_doubler())
    version, _ = register(workspace, Request("doubler", str(target)))
    assert version.flavors == ["python_function"]
    predicted = open_model(workspace, version).predict(frame[["hour"]])
    np.testing.assert_array_equal(np.asarray(predicted).ravel(), (frame["hour"] * 2).to_numpy())


def _doubler() -> Any:
    """An mlflow.pyfunc.PythonModel (defined here so that importing this module needs no mlflow)."""
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return model_input * 2

    return Doubler()


def test_without_mlflow_a_python_function_model_names_the_extra(workspace: Workspace, tmp_path: Path) -> None:
    """mlflow is installed here, so the child process hides it from imports (the one stand-in)."""
    model = tmp_path / "pyfunc-only"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: custom_loader\n")
    register(workspace, Request("opaque", str(model)))
    script = textwrap.dedent(
        f"""
        import sys, pandas
        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "mlflow" or name.startswith("mlflow."):
                    raise ImportError("hidden")
        sys.meta_path.insert(0, Hide())
        from keel.errors import KeelError
        from keel.models.registry import resolve_model
        from keel.models.scoring import open_model
        from keel.workspace import Workspace
        ws = Workspace.open({str(workspace.config.root)!r})
        try:
            open_model(ws, resolve_model(ws, "opaque:1")).predict(pandas.DataFrame({{"x": [1]}}))
        except KeelError as error:
            print(error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert "needs the mlflow package" in done.stdout and "keelml[mlflow]" in done.stdout, done.stderr
