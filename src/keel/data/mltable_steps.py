"""The MLTable transformations after the read: rows, columns and column types.

``take: n``
    the first n rows. ``skip: n``: all but the first n rows.
``take_random_sample: {probability: p, seed: s}``
    keeps each row with probability p (0 to 1); the same seed keeps the same rows
    of the same table. Without a seed the sample differs each time.
``drop_columns`` / ``keep_columns``
    a name or a list of names; naming a column the table lacks is an error.
    ``keep_columns`` keeps the table's own column order.
``convert_column_types``
    a list of ``{columns: name | [names], column_type: T}``, T being ``int``, ``float``,
    ``string``, ``boolean``, ``datetime``, or ``{boolean: {true_values, false_values,
    mismatch_as}}`` or ``{datetime: {formats: [...]}}`` (strptime formats, tried in
    order; plain ``datetime`` tries ISO 8601). Text that is not a number, or not a
    date in any format, becomes null, as in Azure's ``to_pandas_dataframe``. A value
    in neither boolean list is an error unless ``mismatch_as`` is ``true`` or ``false``;
    without lists, true/True/TRUE/1 and false/False/FALSE/0 are the booleans.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from keel.data.mltable import MLTableSpec, Transformation, Where

_INT = r"^[+-]?\d+$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$"
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_TRUE = ("true", "True", "TRUE", "1")
_FALSE = ("false", "False", "FALSE", "0")
_TYPES = ("int", "float", "string", "boolean", "datetime")
Converter = Callable[[Any], Any]


def apply_step(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    """``table`` after one transformation."""
    handlers: dict[str, Callable[[MLTableSpec, Transformation, Any], Any]] = {
        "take": _take,
        "skip": _skip,
        "take_random_sample": _sample,
        "drop_columns": _drop,
        "keep_columns": _keep,
        "convert_column_types": _convert,
    }
    return handlers[step.name](spec, step, table)


def _count(spec: MLTableSpec, step: Transformation) -> int:
    if not isinstance(step.argument, int) or isinstance(step.argument, bool) or step.argument < 0:
        raise spec.error(step.where, f"{step.name} takes a row count (a whole number, 0 or more)")
    return step.argument


def _take(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    return table.slice(0, _count(spec, step))


def _skip(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    return table.slice(_count(spec, step))


def _sample(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    import pyarrow.compute as pc

    options = step.argument
    if not isinstance(options, dict) or "probability" not in options:
        raise spec.error(step.where, "take_random_sample takes {probability: 0…1, seed: n}")
    unknown = set(options) - {"probability", "seed"}
    if unknown:
        raise spec.error((*step.where, sorted(unknown)[0]), "unknown option; allowed: probability, seed")
    probability, seed = options["probability"], options.get("seed")
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1:
        raise spec.error((*step.where, "probability"), "probability is a number from 0 to 1")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise spec.error((*step.where, "seed"), "seed is a whole number")
    draws = pc.random(table.num_rows, initializer="system" if seed is None else seed)
    return table.filter(pc.less(draws, float(probability)))


def _names(spec: MLTableSpec, where: Where, argument: Any, table: Any) -> list[str]:
    names = [argument] if isinstance(argument, str) else argument
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise spec.error(where, "expected a column name or a list of column names")
    if len(set(names)) != len(names):
        raise spec.error(where, "a column is named twice")
    missing = [name for name in names if name not in table.column_names]
    if missing:
        have = ", ".join(table.column_names[:30])
        raise spec.error(where, f"no column {missing[0]!r} in the table", hint=f"its columns: {have}")
    return list(names)


def _drop(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    return table.drop_columns(_names(spec, step.where, step.argument, table))


def _keep(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    keep = set(_names(spec, step.where, step.argument, table))
    return table.select([name for name in table.column_names if name in keep])


def _convert(spec: MLTableSpec, step: Transformation, table: Any) -> Any:
    if not isinstance(step.argument, list) or not step.argument:
        raise spec.error(step.where, "convert_column_types takes a list of {columns: …, column_type: …}")
    for index, item in enumerate(step.argument):
        where: Where = (*step.where, index)
        if not isinstance(item, dict) or set(item) != {"columns", "column_type"}:
            raise spec.error(where, "each conversion is {columns: …, column_type: …}")
        names = _names(spec, (*where, "columns"), item["columns"], table)
        convert = _converter(spec, (*where, "column_type"), item["column_type"])
        for name in names:
            try:
                column = convert(_plain(table.column(name)))
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise spec.error((*where, "column_type"), f"column {name!r}: {exc}") from None
            table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _converter(spec: MLTableSpec, where: Where, column_type: Any) -> Converter:
    name: Any = column_type
    options: Any = {}
    if isinstance(column_type, dict) and len(column_type) == 1:
        name, options = next(iter(column_type.items()))
        options = options if options is not None else {}
    if name == "stream_info":
        raise spec.error(where, "stream_info columns are not supported; keep paths as strings")
    if not isinstance(name, str) or name not in _TYPES or not isinstance(options, dict):
        raise spec.error(where, f"expected one of {', '.join(_TYPES)}, or {{boolean: …}} / {{datetime: …}}")
    if name == "boolean":
        return _boolean_converter(spec, where, options)
    if name == "datetime":
        return _datetime_converter(spec, where, options)
    if options:
        raise spec.error(where, f"{name} takes no options")
    return {"int": _to_int, "float": _to_float, "string": _to_string}[name]


def _boolean_converter(spec: MLTableSpec, where: Where, options: dict[str, Any]) -> Converter:
    unknown = set(options) - {"true_values", "false_values", "mismatch_as"}
    if unknown:
        raise spec.error((*where, "boolean"), f"unknown option {sorted(unknown)[0]!r}")
    true_values = _strings(spec, (*where, "boolean", "true_values"), options.get("true_values", list(_TRUE)))
    false_values = _strings(
        spec, (*where, "boolean", "false_values"), options.get("false_values", list(_FALSE))
    )
    if set(true_values) & set(false_values):
        raise spec.error((*where, "boolean"), "true_values and false_values overlap")
    mismatch = options.get("mismatch_as", "error")
    if mismatch not in ("error", "true", "false"):
        raise spec.error((*where, "boolean", "mismatch_as"), "mismatch_as is error, true or false")
    return functools.partial(_to_bool, true_values=true_values, false_values=false_values, mismatch=mismatch)


def _datetime_converter(spec: MLTableSpec, where: Where, options: dict[str, Any]) -> Converter:
    unknown = set(options) - {"formats"}
    if unknown:
        hint = "date_constant is not supported" if "date_constant" in unknown else None
        raise spec.error((*where, "datetime"), f"unknown option {sorted(unknown)[0]!r}", hint=hint)
    formats = options.get("formats", list(_ISO_FORMATS))
    formats = [formats] if isinstance(formats, str) else formats
    return functools.partial(_to_datetime, formats=_strings(spec, (*where, "datetime", "formats"), formats))


def _strings(spec: MLTableSpec, where: Where, values: Any) -> list[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise spec.error(where, "expected a list of strings")
    return list(values)


# -- conversions (on pyarrow arrays) ------------------------------------------------------------


def _plain(column: Any) -> Any:
    import pyarrow as pa

    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _is_text(column: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(column.type) or pa.types.is_large_string(column.type))


def _matching(column: Any, pattern: str) -> Any:
    """Trimmed text where it matches ``pattern``, null elsewhere."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(column)
    return pc.if_else(
        pc.match_substring_regex(text, pattern, ignore_case=True), text, pa.scalar(None, text.type)
    )


def _to_int(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if _is_text(column):
        return pc.cast(_matching(column, _INT), pa.int64())
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = pc.cast(column, pa.float64())
        whole = pc.and_(pc.is_finite(values), pc.equal(pc.floor(values), values))
        return pc.cast(pc.if_else(whole, values, pa.scalar(None, pa.float64())), pa.int64())
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.cast(column, pa.int64())
    raise ValueError(f"cannot convert {kind} to int")


def _to_float(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if _is_text(column):
        return pc.cast(_matching(column, _FLOAT), pa.float64())
    if (
        pa.types.is_integer(column.type)
        or pa.types.is_floating(column.type)
        or pa.types.is_decimal(column.type)
    ):
        return pc.cast(column, pa.float64())
    if pa.types.is_boolean(column.type):
        return pc.cast(pc.cast(column, pa.int8()), pa.float64())
    raise ValueError(f"cannot convert {column.type} to float")


def _to_string(column: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_nested(column.type):
        raise ValueError(f"cannot convert {column.type} to string")
    return column.cast(pa.string())


def _to_bool(column: Any, *, true_values: list[str], false_values: list[str], mismatch: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(column.type):
        return column
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return pc.not_equal(column, 0)
    text = pc.utf8_trim_whitespace(_to_string(column))
    is_true = pc.is_in(text, value_set=pa.array(true_values))
    is_false = pc.is_in(text, value_set=pa.array(false_values))
    neither = pc.and_(pc.is_valid(text), pc.invert(pc.or_(is_true, is_false)))
    if mismatch == "error" and pc.any(neither).as_py():
        first = pc.filter(text, neither)[0].as_py()
        raise ValueError(f"{first!r} is in neither true_values nor false_values (set mismatch_as)")
    otherwise = pa.scalar(mismatch == "true" if mismatch != "error" else None, pa.bool_())
    answer = pc.if_else(is_true, True, pc.if_else(is_false, False, otherwise))
    return pc.if_else(pc.is_valid(text), answer, pa.scalar(None, pa.bool_()))


def _to_datetime(column: Any, *, formats: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):
        return column
    if pa.types.is_date(column.type):
        return pc.cast(column, pa.timestamp("us"))
    if not _is_text(column):
        raise ValueError(f"cannot convert {column.type} to datetime")
    text = pc.utf8_trim_whitespace(column)
    result = pa.nulls(len(text), pa.timestamp("us"))
    for fmt in formats:
        parsed = _python_strptime(text, fmt) if "%f" in fmt else _arrow_strptime(text, fmt)
        result = pc.coalesce(result, parsed)
    return result


def _arrow_strptime(text: Any, fmt: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    return parsed if parsed.type == pa.timestamp("us") else pc.cast(parsed, pa.timestamp("us"))


def _python_strptime(text: Any, fmt: str) -> Any:
    """Formats Arrow cannot parse (``%f``): each distinct value once, through Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.unique(text)

    def parse(value: str | None) -> datetime | None:
        try:
            return datetime.strptime(value, fmt) if value is not None else None
        except ValueError:
            return None

    parsed = pa.array([parse(value) for value in distinct.to_pylist()], pa.timestamp("us"))
    return pc.take(parsed, pc.index_in(text, value_set=distinct))
