"""Flavors: how an MLflow-format model is turned into a ``predict(frame)`` function.

Each loader reads the model's bytes through :meth:`LoadedModel.verified_bytes`, so
what it deserializes is exactly what was registered. The order is the safest first:
ONNX needs no pickle; sklearn is loaded natively; anything else goes through MLflow.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInput, KeelError, Unavailable
from keel.models.mlflow_format import PYFUNC, MLmodel

if TYPE_CHECKING:
    import pandas

    from keel.models.scoring import LoadedModel, Predictor

SKLEARN_FORMATS = ("pickle", "cloudpickle", "skops")
# onnxruntime's input types, as numpy dtypes.
_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def load_predictor(loaded: LoadedModel, mlmodel: MLmodel) -> Predictor:
    """The model's predict function, from the first flavor Keel can load it with."""
    if mlmodel.flavor("onnx") is not None:
        return _onnx(loaded, mlmodel.flavors["onnx"])
    sklearn = mlmodel.flavor("sklearn")
    if sklearn is not None and str(sklearn.get("serialization_format", "pickle")) in SKLEARN_FORMATS:
        return _sklearn(loaded, sklearn)
    if mlmodel.flavor(PYFUNC) is not None:
        return _pyfunc(loaded)
    names = ", ".join(mlmodel.flavors)
    raise InvalidInput(
        f"model {loaded.version.name}:{loaded.version.version} has flavors {names}; "
        "Keel scores onnx, sklearn and python_function models without a script",
        hint="give the deployment a scoring script",
    )


def _sklearn(loaded: LoadedModel, flavor: dict[str, Any]) -> Predictor:
    from keel.artifacts import safe_relative_path

    relative = safe_relative_path(str(flavor.get("pickled_model") or "model.pkl"))
    data = loaded.verified_bytes(relative)
    fmt = str(flavor.get("serialization_format", "pickle"))
    if fmt == "skops":
        model = _skops(loaded, data, flavor)
    else:
        try:
            model = pickle.loads(data)  # the bytes registered, verified above
        except ModuleNotFoundError as exc:
            raise Unavailable(
                f"model {loaded.version.name}:{loaded.version.version} needs the {exc.name} package to load",
                hint=f"pip install {exc.name}",
            ) from None
        except Exception as exc:  # a pickle from another library version, say: one line, not a traceback
            raise InvalidInput(
                f"model {loaded.version.name}:{loaded.version.version}: {relative} could not be unpickled "
                f"({type(exc).__name__}: {exc})",
                hint="load it with the library versions in its requirements.txt",
            ) from None
    return _method(model, "predict")


def _skops(loaded: LoadedModel, data: bytes, flavor: dict[str, Any]) -> Any:
    from keel.models.scoring import require

    skops_io = require("skops.io", "mlflow")
    trusted = flavor.get("skops_trusted_types") or None
    try:
        return skops_io.loads(data, trusted=trusted)
    except Exception as exc:
        if type(exc).__name__ != "UntrustedTypesFoundException":
            raise
        raise InvalidInput(
            f"model {loaded.version.name}:{loaded.version.version}: skops refuses types its MLmodel "
            f"does not trust: {exc}",
            hint="save it with skops_trusted_types naming them",
        ) from None


def _onnx(loaded: LoadedModel, flavor: dict[str, Any]) -> Predictor:
    from keel.artifacts import safe_relative_path
    from keel.models.scoring import require

    runtime = require("onnxruntime", "onnx")
    data = loaded.verified_bytes(safe_relative_path(str(flavor.get("data") or "model.onnx")))
    try:
        session = runtime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InvalidInput(
            f"model {loaded.version.name}:{loaded.version.version}: not a valid ONNX model: {exc}"
        ) from None
    inputs = session.get_inputs()
    output = session.get_outputs()[0].name

    def predict(frame: pandas.DataFrame) -> Any:
        if len(inputs) == 1:
            feed = {inputs[0].name: frame.to_numpy(dtype=_ONNX_TYPES.get(inputs[0].type, "float32"))}
        else:
            feed = {
                spec.name: frame[spec.name]
                .to_numpy(dtype=_ONNX_TYPES.get(spec.type, "float32"))
                .reshape(-1, 1)
                for spec in inputs
            }
        result = session.run([output], feed)[0]
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    return predict


def _pyfunc(loaded: LoadedModel) -> Predictor:
    from keel.models.scoring import require

    pyfunc = require("mlflow.pyfunc", "mlflow")
    try:
        model = pyfunc.load_model(str(loaded.directory))
    except KeelError:
        raise
    except Exception as exc:  # MLflow's own failure, said in one line
        raise InvalidInput(
            f"MLflow could not load model {loaded.version.name}:{loaded.version.version}: {exc}"
        ) from None
    return _method(model, "predict")


def _method(model: Any, name: str) -> Predictor:
    method = getattr(model, name, None)
    if not callable(method):
        raise InvalidInput(f"the loaded model ({type(model).__name__}) has no {name}() method")
    return method  # type: ignore[no-any-return]
