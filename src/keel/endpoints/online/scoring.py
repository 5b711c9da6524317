"""Inside a worker: the model behind a deployment, and how each route reaches it.

A deployment with a scoring script runs it the Azure ML way: ``init()`` once, with
``AZUREML_MODEL_DIR`` naming the model's folder, then ``run(raw_data)`` per
``/score`` request with the body as text. The table routes (MLflow's
``/invocations``, the Open Inference Protocol) hand the script the same JSON a
``/score`` client would send for a table (``{"input_data": {"columns", "data"}}``)
and read its answer as one prediction per row.

An MLflow model without a script is scored by Keel ("no-code"): rows become a
pandas DataFrame, checked against the model's signature, and predicted in one call
— for one request, or for many at once when adaptive batching is on.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keel.endpoints.online.tables import BadRequest, Rows, ScoringError, azure_rows, json_bytes, load_json
from keel.errors import KeelError


@dataclass
class Outputs:
    """A prediction for every row, as named columns (``single`` when the model gave one unnamed column)."""

    columns: dict[str, np.ndarray[Any, Any]]
    single: bool

    @property
    def length(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def sliced(self, start: int, stop: int) -> Outputs:
        return Outputs({name: values[start:stop] for name, values in self.columns.items()}, self.single)

    def predictions(self) -> list[Any]:
        """One entry per row: a value (or list) for one column, a record for several."""
        if self.single:
            return next(iter(self.columns.values())).tolist()  # type: ignore[no-any-return]
        names = list(self.columns)
        lists = [self.columns[name].tolist() for name in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]


def outputs_of(result: Any, rows: int) -> Outputs:
    """Whatever a model or script returned, as :class:`Outputs` with one entry per row."""
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        outputs = Outputs({str(c): result[c].to_numpy() for c in result.columns}, single=False)
    elif isinstance(result, pd.Series):
        outputs = Outputs({str(result.name or "predict"): result.to_numpy()}, single=True)
    elif isinstance(result, dict) and len(result) == 1 and isinstance(next(iter(result.values())), list):
        outputs = Outputs({"predict": np.asarray(next(iter(result.values())))}, single=True)
    else:
        try:
            outputs = Outputs({"predict": np.asarray(result)}, single=True)
        except (ValueError, TypeError):
            raise ScoringError(
                f"the model returned {type(result).__name__}, not one prediction per row"
            ) from None
    values = next(iter(outputs.columns.values()))
    if values.ndim == 0 or outputs.length != rows:
        got = "a single value" if values.ndim == 0 else f"{outputs.length} predictions"
        raise ScoringError(f"the model returned {got} for {rows} rows")
    return outputs


class Scorer:
    """What a worker scores with; subclasses are the no-code model and the scoring script."""

    batchable = False
    signature_columns: list[str] | None = None

    def score_raw(self, body: bytes) -> tuple[bytes, int]:
        """``/score``: the answer's JSON and the number of rows scored."""
        raise NotImplementedError

    def score_rows(self, rows: Rows) -> Outputs:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        return {"inputs": [], "outputs": []}


class NoCodeScorer(Scorer):
    """An MLflow model scored by Keel: rows → DataFrame → ``LoadedModel.predict``."""

    batchable = True

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.signature_inputs = _signature_inputs(loaded)
        names = [spec.get("name") for spec in self.signature_inputs]
        self.signature_columns = [str(n) for n in names] if names and all(names) else None
        self.fast = NumericFastPath.for_model(loaded, self.signature_inputs)

    def score_raw(self, body: bytes) -> tuple[bytes, int]:
        rows = azure_rows(body)
        outputs = self.score_rows(rows)
        return json_bytes(outputs.predictions()), len(rows.rows)

    def score_rows(self, rows: Rows) -> Outputs:
        if self.fast is not None and rows.rows:
            result = self.fast.predict(rows)
            if result is not None:
                return outputs_of(result, len(rows.rows))
        frame = self._frame(rows)
        try:
            result = self.loaded.predict(frame)  # checks the frame against the signature first
        except KeelError as exc:  # the registry names missing and mistyped columns
            raise BadRequest(str(exc), status=exc.http_status if exc.http_status < 500 else 400) from None
        except Exception as exc:
            raise ScoringError(f"predict failed: {type(exc).__name__}: {exc}") from None
        return outputs_of(result, len(rows.rows))

    def _frame(self, rows: Rows) -> Any:
        import pandas as pd

        columns = rows.columns
        if columns is None and self.signature_columns is not None:
            width = len(rows.rows[0]) if rows.rows else len(self.signature_columns)
            if width != len(self.signature_columns):
                expected = ", ".join(self.signature_columns)
                raise BadRequest(
                    f"each row has {width} values; the model takes {len(self.signature_columns)} ({expected})"
                )
            columns = self.signature_columns
        if not rows.rows:
            raise BadRequest("the request holds no rows to score")
        return pd.DataFrame(rows.rows, columns=columns)

    def metadata(self) -> dict[str, Any]:
        inputs = [
            {
                "name": str(spec.get("name", f"input_{i}")),
                "datatype": _oip_type(spec),
                "shape": [-1],
            }
            for i, spec in enumerate(self.signature_inputs)
        ]
        outputs = [
            {"name": str(spec.get("name", "predict")), "datatype": _oip_type(spec), "shape": [-1]}
            for spec in _signature_outputs(self.loaded)
        ] or [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
        return {"inputs": inputs, "outputs": outputs}


class NumericFastPath:
    """Single rows without pandas: an all-numeric scikit-learn model gets a float array directly.

    Building a one-row DataFrame, checking it against the signature and letting
    scikit-learn take it apart again costs ten times the prediction itself. When the
    model is a scikit-learn estimator whose inputs are all numeric, the rows go to
    ``predict`` as a float64 array in the estimator's own column order. Anything
    unexpected (a missing column, a string, the estimator refusing the array) sends
    the request down the ordinary path, which says what is wrong.
    """

    _NUMERIC = frozenset({"double", "float", "long", "integer", "boolean"})

    def __init__(self, predict: Any, columns: list[str] | None) -> None:
        self._predict = predict
        self._columns = columns
        self._orders: dict[tuple[str, ...] | None, list[int] | None] = {}

    @classmethod
    def for_model(cls, loaded: Any, signature: list[dict[str, Any]]) -> NumericFastPath | None:
        mlmodel = getattr(loaded, "mlmodel", None)
        if mlmodel is None or mlmodel.flavor("sklearn") is None or mlmodel.flavor("onnx") is not None:
            return None
        if signature and not all(str(spec.get("type")) in cls._NUMERIC for spec in signature):
            return None
        import warnings

        from keel.models.flavors import load_predictor

        predict = load_predictor(loaded, mlmodel)  # the estimator's bound predict, from verified bytes
        estimator = getattr(predict, "__self__", None)
        if estimator is None or not type(estimator).__module__.startswith("sklearn."):
            return None
        names = getattr(estimator, "feature_names_in_", None)
        # The array carries the estimator's own column order, so its name check has nothing to add;
        # the estimator's parameters were checked when it was fitted, so predict need not check them again.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        import sklearn

        sklearn.set_config(skip_parameter_validation=True)
        return cls(predict, [str(n) for n in names] if names is not None else None)

    def predict(self, rows: Rows) -> Any:
        key = tuple(rows.columns) if rows.columns is not None else None
        if key not in self._orders:
            self._orders[key] = self._order(rows.columns)
        order = self._orders[key]
        if order is None:
            return None
        try:
            values = np.asarray(rows.rows, dtype=np.float64)
            if values.ndim != 2:
                return None
            if order:
                values = values[:, order]
            return self._predict(values)
        except (ValueError, TypeError, IndexError):
            return None

    def _order(self, columns: list[str] | None) -> list[int] | None:
        """Column positions in the estimator's order: [] as they are, None when they cannot match."""
        if self._columns is None or columns is None or columns == self._columns:
            return []  # positions as given (the estimator checks the width)
        position = {name: index for index, name in enumerate(columns)}
        if not all(name in position for name in self._columns):
            return None
        return [position[name] for name in self._columns]


class ScriptScorer(Scorer):
    """An Azure ML scoring script: ``init()`` once, ``run(raw_data)`` per request."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def score_raw(self, body: bytes) -> tuple[bytes, int]:
        result = self._run(body.decode("utf-8", "replace"))
        try:
            return json_bytes(result), 1
        except TypeError:
            raise ScoringError(f"run() returned a {type(result).__name__}, which JSON cannot hold") from None

    def score_rows(self, rows: Rows) -> Outputs:
        table: Any = rows.rows if rows.columns is None else {"columns": rows.columns, "data": rows.rows}
        document = {"input_data": table}
        result = self._run(json_bytes(document).decode())
        if isinstance(result, (str, bytes)):
            try:
                result = load_json(result if isinstance(result, bytes) else result.encode())
            except BadRequest:
                raise ScoringError("run() returned text that is not JSON predictions") from None
        return outputs_of(result, len(rows.rows))

    def _run(self, raw: str) -> Any:
        try:
            return self.module.run(raw)
        except Exception as exc:
            raise ScoringError(f"run() raised {type(exc).__name__}: {exc}") from None


def load_script(code_folder: Path, script: str) -> Any:
    """Import the scoring script from its frozen code folder and run its ``init()``."""
    path = code_folder / script
    if str(code_folder) not in sys.path:
        sys.path.insert(0, str(code_folder))
    spec = importlib.util.spec_from_file_location("keel_scoring_script", path)
    if spec is None or spec.loader is None:
        raise ScoringError(f"cannot import the scoring script {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["keel_scoring_script"] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise ScoringError(f"the scoring script {script} defines no {name}() function")
    module.init()
    return module


def azureml_environment(model_dir: Path, script: str | None) -> None:
    """The variables Azure ML sets for a scoring script."""
    os.environ["AZUREML_MODEL_DIR"] = str(model_dir)
    if script is not None:
        os.environ["AZUREML_ENTRY_SCRIPT"] = script


def _signature_inputs(loaded: Any) -> list[dict[str, Any]]:
    signature = getattr(getattr(loaded, "version", None), "signature", None) or {}
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    if isinstance(inputs, str):
        try:
            inputs = load_json(inputs.encode())
        except BadRequest:
            return []
    return [item for item in inputs or [] if isinstance(item, dict)]


def _signature_outputs(loaded: Any) -> list[dict[str, Any]]:
    signature = getattr(getattr(loaded, "version", None), "signature", None) or {}
    outputs = signature.get("outputs") if isinstance(signature, dict) else None
    if isinstance(outputs, str):
        try:
            outputs = load_json(outputs.encode())
        except BadRequest:
            return []
    return [item for item in outputs or [] if isinstance(item, dict)]


_MLFLOW_TO_OIP = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


_NUMPY_TO_OIP = {"bool": "BOOL", "int32": "INT32", "int64": "INT64", "float32": "FP32", "float64": "FP64"}


def _oip_type(spec: dict[str, Any]) -> str:
    """An MLflow signature entry's type in the protocol's terms (a column type or a tensor's dtype)."""
    tensor = spec.get("tensor-spec")
    if spec.get("type") == "tensor" and isinstance(tensor, dict):
        return _NUMPY_TO_OIP.get(str(tensor.get("dtype")), "BYTES")
    kind = spec.get("type")
    return _MLFLOW_TO_OIP.get(str(kind), "BYTES" if kind else "FP64")
