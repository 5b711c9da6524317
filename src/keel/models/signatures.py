"""Model signatures: what columns (or tensors) a model takes, and checking inputs against them.

A signature is MLflow's JSON: ``{"inputs": [...], "outputs": [...]}``, each input a
column (``{"name": "a", "type": "double", "required": true}``) or a tensor
(``{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}``).
Checking an input names every offending column at once, so a batch that fails says
everything that is wrong with it, not the first thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInput

if TYPE_CHECKING:
    import pandas

# MLflow's column types, and the numpy dtype each is given to the model as.
COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "object",
    "binary": "object",
    "datetime": "datetime64[ns]",
}
_SHOWN = 5  # offending columns named in one message


@dataclass(frozen=True)
class ColumnSpec:
    name: str | None
    type: str
    required: bool = True


@dataclass(frozen=True)
class TensorSpec:
    name: str | None
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class InputSchema:
    """A signature's inputs: named columns, or tensors."""

    columns: tuple[ColumnSpec, ...] = ()
    tensors: tuple[TensorSpec, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns if c.name is not None]


def input_schema(signature: dict[str, Any] | None) -> InputSchema | None:
    """The input half of a signature, parsed; None when there is no signature."""
    if not signature or not signature.get("inputs"):
        return None
    columns: list[ColumnSpec] = []
    tensors: list[TensorSpec] = []
    for item in signature["inputs"]:
        if not isinstance(item, dict):
            raise InvalidInput(f"signature input {item!r:.60} is not a column or tensor spec")
        if item.get("type") == "tensor":
            spec = item.get("tensor-spec") or {}
            shape = tuple(int(n) for n in spec.get("shape") or ())
            tensors.append(TensorSpec(item.get("name"), str(spec.get("dtype", "float64")), shape))
        else:
            columns.append(
                ColumnSpec(item.get("name"), str(item.get("type")), bool(item.get("required", True)))
            )
    if columns and tensors:
        raise InvalidInput("a signature mixes columns and tensors; MLflow allows one or the other")
    return InputSchema(tuple(columns), tuple(tensors))


def validate(frame: pandas.DataFrame, schema: InputSchema) -> pandas.DataFrame:
    """``frame`` reduced to the schema's columns, in its order, with each column's type checked
    (and widened where that loses nothing); InvalidInput names the missing and mistyped columns."""
    if schema.tensors:
        return _validate_tensor(frame, schema.tensors)
    named = [c for c in schema.columns if c.name is not None]
    if not named:  # unnamed columns: positional
        return frame
    if _already_typed(frame, named):  # the common case, in one selection (online requests are small)
        names = [str(c.name) for c in named]
        return frame if list(frame.columns) == names else frame[names]
    missing = [c.name for c in named if c.required and c.name not in frame.columns]
    problems: list[str] = []
    converted: dict[str, Any] = {}
    for column in named:
        if column.name not in frame.columns:
            continue
        value, problem = _convert(frame[column.name], column)
        if problem:
            problems.append(f"{column.name!r} {problem}")
        else:
            converted[str(column.name)] = value
    if missing or problems:
        raise InvalidInput(
            _complaint(missing, problems, schema), hint="the model's signature: keel model show"
        )
    import pandas

    return pandas.DataFrame(converted, index=frame.index)


def _already_typed(frame: pandas.DataFrame, named: list[ColumnSpec]) -> bool:
    """Every column present with exactly the numeric dtype the signature gives the model
    (numeric dtypes other than float cannot hold missing values, so nothing else to check)."""
    dtypes = frame.dtypes
    for column in named:
        wanted = COLUMN_TYPES.get(column.type)
        if column.name not in frame.columns or column.type == "string" or wanted in (None, "object"):
            return False
        if str(dtypes[column.name]) != wanted:
            return False
    return True


def _complaint(missing: list[Any], problems: list[str], schema: InputSchema) -> str:
    parts = []
    if missing:
        shown = ", ".join(repr(m) for m in missing[:_SHOWN]) + (" …" if len(missing) > _SHOWN else "")
        parts.append(f"missing column{'s' if len(missing) > 1 else ''} {shown}")
    if problems:
        parts.append("; ".join(problems[:_SHOWN]) + (" …" if len(problems) > _SHOWN else ""))
    expected = ", ".join(f"{c.name}: {c.type}" for c in schema.columns[:12])
    return f"the input does not match the model's signature: {'; '.join(parts)} (expected {expected})"


def _convert(series: Any, column: ColumnSpec) -> tuple[Any, str | None]:
    """The column as the signature's type, or why it cannot be."""
    import numpy
    import pandas.api.types as kinds

    wanted = column.type
    has_missing = bool(series.isna().any())
    if has_missing and column.required and wanted not in ("float", "double"):
        return None, f"has missing values but is a required {wanted} column"
    if wanted in ("float", "double"):
        if kinds.is_bool_dtype(series) or not kinds.is_numeric_dtype(series):
            return None, f"should be {wanted}, got {_kind(series)}"
        return series.astype(COLUMN_TYPES[wanted]), None
    if wanted in ("integer", "long"):
        if not kinds.is_integer_dtype(series) or kinds.is_bool_dtype(series):
            return None, f"should be {wanted}, got {_kind(series)}"
        limit = numpy.iinfo(COLUMN_TYPES[wanted])
        if len(series) and (series.min() < limit.min or series.max() > limit.max):
            return None, f"has values out of the {wanted} range"
        return series.astype(COLUMN_TYPES[wanted]), None
    if wanted == "boolean":
        ok = kinds.is_bool_dtype(series)
        return (series, None) if ok else (None, f"should be boolean, got {_kind(series)}")
    if wanted == "string":
        ok = kinds.is_string_dtype(series) and all(isinstance(value, str) for value in series.dropna())
        return (series, None) if ok else (None, f"should be string, got {_kind(series)}")
    if wanted == "datetime":
        ok = kinds.is_datetime64_any_dtype(series)
        return (series, None) if ok else (None, f"should be datetime, got {_kind(series)}")
    if wanted == "binary":
        ok = all(isinstance(value, bytes | bytearray) for value in series.dropna())
        return (series, None) if ok else (None, f"should be binary, got {_kind(series)}")
    return series, None  # a type Keel does not check (arrays, objects): passed as given


def _kind(series: Any) -> str:
    sample = series.dropna()
    shown = (
        f" (e.g. {sample.iloc[0]!r:.30})" if len(sample) and str(series.dtype) in ("object", "str") else ""
    )
    return f"{series.dtype}{shown}"


def _validate_tensor(frame: pandas.DataFrame, tensors: tuple[TensorSpec, ...]) -> pandas.DataFrame:
    import pandas.api.types as kinds

    if len(tensors) != 1:
        return frame  # several named tensors: the flavor feeds them by name
    spec = tensors[0]
    width = spec.shape[1] if len(spec.shape) > 1 else None
    if width is not None and width != -1 and width != frame.shape[1]:
        raise InvalidInput(
            f"the input has {frame.shape[1]} columns; the model's signature takes a tensor of {width}"
        )
    wrong = [
        str(c) for c in frame.columns if not kinds.is_numeric_dtype(frame[c]) or kinds.is_bool_dtype(frame[c])
    ]
    if wrong and spec.dtype not in ("object", "str", "bool"):
        shown = ", ".join(map(repr, wrong[:_SHOWN]))
        raise InvalidInput(f"the model takes a {spec.dtype} tensor; columns {shown} are not numeric")
    return frame.astype(spec.dtype) if not wrong else frame


# -- inferring ---------------------------------------------------------------------------------


def infer_signature(example: Any, predictions: Any = None) -> dict[str, Any]:
    """A signature from an input example (and, when given, the model's predictions on it)."""
    return {"inputs": _specs_of(example), "outputs": None if predictions is None else _specs_of(predictions)}


def _specs_of(value: Any) -> list[dict[str, Any]]:
    import numpy
    import pandas

    if isinstance(value, dict):
        value = pandas.DataFrame(value)
    if isinstance(value, pandas.Series):
        value = value.to_frame()
    if isinstance(value, pandas.DataFrame):
        return [{"type": _column_type(value[c]), "name": str(c), "required": True} for c in value.columns]
    array = numpy.asarray(value)
    shape = [-1, *array.shape[1:]]
    return [{"type": "tensor", "tensor-spec": {"dtype": str(array.dtype), "shape": shape}}]


def _column_type(series: Any) -> str:
    import pandas.api.types as kinds

    if kinds.is_bool_dtype(series):
        return "boolean"
    if kinds.is_integer_dtype(series):
        return "integer" if series.dtype.itemsize <= 4 else "long"
    if kinds.is_float_dtype(series):
        return "float" if series.dtype.itemsize <= 4 else "double"
    if kinds.is_datetime64_any_dtype(series):
        return "datetime"
    sample = series.dropna()
    if len(sample) and isinstance(sample.iloc[0], bytes | bytearray):
        return "binary"
    return "string"


def describe(signature: dict[str, Any] | None) -> str:
    """One line for people: ``a: double, b: long -> tensor int64 (-1)``."""
    if not signature:
        return ""

    def side(items: list[dict[str, Any]] | None) -> str:
        if not items:
            return "?"
        shown = []
        for item in items:
            if item.get("type") == "tensor":
                spec = item.get("tensor-spec") or {}
                shown.append(f"tensor {spec.get('dtype')} {tuple(spec.get('shape') or ())}")
            else:
                shown.append(
                    f"{item.get('name')}: {item.get('type')}" if item.get("name") else str(item.get("type"))
                )
        return ", ".join(shown)

    return f"{side(signature.get('inputs'))} -> {side(signature.get('outputs'))}"
