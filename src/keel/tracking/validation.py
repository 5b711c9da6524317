"""Checks on names and values before they are queued or written.

Checks run in the caller's thread, so a bad value fails at the line that logged
it rather than later inside the background writer.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Mapping
from typing import Any

from keel.errors import InvalidInput
from keel.store.schema import KEY_LENGTH, NAME_LENGTH, PARAM_VALUE_LENGTH, TAG_VALUE_LENGTH

_KEY_PATTERN = re.compile(r"^[\w\-. /:]+$")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][\w\-]*$")
MAX_STEP = 2**63 - 1


def check_key(key: Any, what: str) -> str:
    """A metric, param or tag key: 1-250 word characters, '-', '.', ' ', '/' or ':'."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what} key must be a non-empty string, got {key!r}")
    if len(key) > KEY_LENGTH:
        raise InvalidInput(f"{what} key {key[:40]!r}… is {len(key)} characters; at most {KEY_LENGTH}")
    if not _KEY_PATTERN.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise InvalidInput(
            f"{what} key {key!r} has characters that are not allowed",
            hint="use letters, digits, '_', '-', '.', ' ', '/' or ':'",
        )
    return key


def check_param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > PARAM_VALUE_LENGTH:
        raise InvalidInput(
            f"param {key!r} has a value of {len(text)} characters; at most {PARAM_VALUE_LENGTH}",
            hint="log long text as an artifact with log_text instead",
        )
    return text


def check_tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > TAG_VALUE_LENGTH:
        raise InvalidInput(f"tag {key!r} has a value of {len(text)} characters; at most {TAG_VALUE_LENGTH}")
    return text


def check_metric_value(key: str, value: Any) -> float:
    """Any real number, NaN and infinities included; never a string or None."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"metric {key!r} must be a number, got {type(value).__name__} {value!r:.60}")
    return float(value)


def check_step(key: str, step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"metric {key!r}: step must be an integer, got {step!r}")
    number = operator.index(step)
    if not 0 <= number <= MAX_STEP:
        raise InvalidInput(f"metric {key!r}: step {step} is outside 0..{MAX_STEP}")
    return number


def check_timestamp(key: str, timestamp: Any) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real):
        raise InvalidInput(f"metric {key!r}: timestamp must be milliseconds, got {timestamp!r}")
    if isinstance(timestamp, float) and not math.isfinite(timestamp):
        raise InvalidInput(f"metric {key!r}: timestamp must be finite")
    return timestamp if isinstance(timestamp, int) else int(float(timestamp))


def check_name(name: Any, what: str) -> str:
    """A job or experiment name that can also serve as an MLflow run id."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or len(name) > NAME_LENGTH:
        raise InvalidInput(
            f"{what} name {name!r} is not valid",
            hint=f"start with a letter or digit, then letters, digits, '_' or '-'; "
            f"at most {NAME_LENGTH} characters",
        )
    return name


def check_display_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LENGTH:
        raise InvalidInput(f"{what} must be 1-{NAME_LENGTH} characters, got {name!r}")
    return name


def text_values(values: Mapping[Any, Any] | None) -> dict[str, str]:
    """YAML tags or variables as text, as Azure ML keeps them: strings, and a null as ''."""
    return {str(key): "" if value is None else str(value) for key, value in (values or {}).items()}


def stringify_mapping(values: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    """Check keys and turn values into strings, for params and tags given as dicts."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{what}s must be a mapping of key to value, got {type(values).__name__}")
    check_value = check_param_value if what == "param" else check_tag_value
    return {check_key(key, what): check_value(key, value) for key, value in values.items()}
