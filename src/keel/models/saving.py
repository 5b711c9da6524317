"""Save a model in the MLflow format, as ``keel.log_model`` does.

Two flavors: ``sklearn`` (``model.pkl`` written with pickle, plus ``python_function``
pointing at ``mlflow.sklearn``) and ``onnx`` (the model converted with skl2onnx to
``model.onnx``, plus ``python_function`` pointing at ``mlflow.onnx``), so either
loads with ``mlflow.pyfunc.load_model`` and with Keel. A signature is inferred from
the input example when none is given.
"""

from __future__ import annotations

import json
import pickle
import platform
from pathlib import Path
from typing import Any

from keel.errors import InvalidInput
from keel.models.mlflow_format import (
    PYFUNC,
    requirement,
    write_environment,
    write_input_example,
    write_mlmodel,
)
from keel.models.signatures import infer_signature

FLAVORS = ("sklearn", "onnx")


def save_model(
    model: Any,
    directory: Path,
    *,
    flavor: str = "sklearn",
    signature: Any = None,
    input_example: Any = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
) -> dict[str, Any] | None:
    """Write ``model`` into the new folder ``directory``; returns the signature written."""
    if flavor not in FLAVORS:
        raise InvalidInput(f"unknown flavor {flavor!r}", hint=f"one of {', '.join(FLAVORS)}")
    if not callable(getattr(model, "predict", None)):
        raise InvalidInput(f"cannot log a {type(model).__name__}: it has no predict() method")
    example = _frame(input_example)
    parsed = as_signature(signature)
    if parsed is None and example is not None:
        parsed = infer_signature(example, model.predict(example))
    directory.mkdir(parents=True, exist_ok=False)
    if flavor == "onnx":
        from keel.models.onnx import convert

        (directory / "model.onnx").write_bytes(convert(model, parsed, example))
        env = write_environment(directory, [requirement("onnxruntime"), requirement("numpy")])
        flavors = _onnx_flavors(env)
    else:
        with open(directory / "model.pkl", "wb") as handle:
            pickle.dump(model, handle, protocol=pickle.DEFAULT_PROTOCOL)
        env = write_environment(directory, [requirement("scikit-learn", "sklearn"), requirement("numpy")])
        flavors = _sklearn_flavors(env)
    example_info = write_input_example(directory, example)
    write_mlmodel(
        directory,
        flavors=flavors,
        signature=parsed,
        input_example_info=example_info,
        run_id=run_id,
        artifact_path=artifact_path,
    )
    return parsed


def _sklearn_flavors(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        PYFUNC: {
            "env": env,
            "loader_module": "mlflow.sklearn",
            "model_path": "model.pkl",
            "predict_fn": "predict",
            "python_version": platform.python_version(),
        },
        "sklearn": {
            "code": None,
            "pickled_model": "model.pkl",
            "serialization_format": "pickle",
            "sklearn_version": requirement("scikit-learn", "sklearn").partition("==")[2] or None,
        },
    }


def _onnx_flavors(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        PYFUNC: {
            "env": env,
            "loader_module": "mlflow.onnx",
            "data": "model.onnx",
            "python_version": platform.python_version(),
        },
        "onnx": {
            "code": None,
            "data": "model.onnx",
            "providers": ["CPUExecutionProvider"],
            "onnx_version": requirement("onnx").partition("==")[2] or None,
        },
    }


def as_signature(signature: Any) -> dict[str, Any] | None:
    """A signature as MLflow JSON, from a dict (parts as lists or JSON strings) or an MLflow
    ``ModelSignature``; ``"infer"`` and None mean: from the input example."""
    if signature is None or signature == "infer":
        return None
    if hasattr(signature, "to_dict") and not isinstance(signature, dict):
        signature = signature.to_dict()
    if not isinstance(signature, dict) or "inputs" not in signature:
        raise InvalidInput(
            "signature must be a mapping with inputs (and outputs), or an mlflow ModelSignature",
            hint='e.g. {"inputs": [{"name": "x", "type": "double"}]}',
        )
    parsed: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = signature.get(part)
        parsed[part] = json.loads(value) if isinstance(value, str) else value
        if parsed[part] is not None and not isinstance(parsed[part], list):
            raise InvalidInput(f"signature {part} must be a list of column or tensor specs")
    return parsed


def _frame(example: Any) -> Any:
    if example is None:
        return None
    import pandas

    if isinstance(example, dict):
        return pandas.DataFrame(example)
    return example
