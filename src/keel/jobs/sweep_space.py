"""A sweep's search space as Optuna distributions, and back to the values a trial gets.

Azure ML's parameter expressions do not all have an Optuna counterpart, so each
is split in two: the distribution Optuna samples (its *raw* value) and the map
from that raw value to what the trial receives. Where they coincide the map is
the identity; elsewhere:

- ``choice`` samples an *index*, so any scalar (mixed types, repeats) is allowed
  and the trial gets the value exactly as written;
- ``loguniform(min_value, max_value)`` samples on ``[exp(min_value), exp(max_value)]``
  with ``log=True``: the same law as Azure's ``exp(uniform(min, max))``;
- ``normal``/``lognormal`` (and their q-forms) sample a *quantile* u in (0, 1)
  and take ``NormalDist(mu, sigma).inv_cdf(u)`` (then ``exp`` for lognormal).
  Optuna has no normal distribution; this probability-integral transform works
  with every sampler: uniform u gives exact normal draws under random sampling,
  Sobol u gives quasi-random ones, and TPE models u, so its prior is the normal
  and what it learns maps back monotonically to values;
- the q-forms round the sampled value as Azure does, ``round(value / q) * q``
  (an int when q is integral), rather than using Optuna's ``step``, which counts
  from ``low`` and so gives other values (``quniform(1, 10, 5)`` may give 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from statistics import NormalDist

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from keel.errors import InvalidInput
from keel.specs.models import Scalar, SearchParam

ParamValue = Scalar | None
"""What a trial receives for one parameter: an int, float, str, bool (or null from a choice)."""

# Quantiles stay this far inside (0, 1): inv_cdf is infinite at the ends, and a
# sampler may return a bound exactly. 1e-12 is about 7 sigma from the mean.
_QUANTILE_EDGE = 1e-12
_MAX_EXPONENT = math.log(1e300)  # leaves room for rounding to q
_NORMAL_FAMILY = frozenset({"normal", "lognormal", "qnormal", "qlognormal"})
# What Azure ML's bayesian sampling accepts; Keel samples the rest too and says so.
AZURE_BAYESIAN_TYPES = frozenset({"choice", "uniform", "quniform"})


def distributions(space: Mapping[str, SearchParam]) -> dict[str, BaseDistribution]:
    """The Optuna distribution each parameter's raw value is drawn from."""
    return {name: _distribution(name, param) for name, param in space.items()}


def grid(space: Mapping[str, SearchParam]) -> dict[str, list[int]]:
    """The grid over choice indices; grid sampling has nothing to enumerate otherwise."""
    for name, param in space.items():
        if param.type != "choice":
            raise InvalidInput(
                f"grid sampling needs every search_space parameter to be a choice; {name!r} is {param.type}",
                hint="list the values with type: choice, or use random or bayesian sampling",
            )
    return {name: list(range(len(param.values or []))) for name, param in space.items()}


def grid_size(space: Mapping[str, SearchParam]) -> int:
    return math.prod(len(param.values or []) for param in space.values())


def trial_values(space: Mapping[str, SearchParam], raw: Mapping[str, object]) -> dict[str, ParamValue]:
    """The values a trial receives, from the raw values Optuna sampled."""
    return {name: _value(param, raw[name]) for name, param in space.items()}


def _distribution(name: str, param: SearchParam) -> BaseDistribution:
    if param.type == "choice":
        _check_choice(name, param.values or [])
        return CategoricalDistribution(list(range(len(param.values or []))))
    if param.type == "randint":
        return IntDistribution(0, (param.upper or 1) - 1)
    if param.type in _NORMAL_FAMILY:
        if "lognormal" in param.type:
            _check_exp(name, param, _normal(param, 1 - _QUANTILE_EDGE))
        return FloatDistribution(_QUANTILE_EDGE, 1 - _QUANTILE_EDGE)
    low, high = float(param.min_value or 0.0), float(param.max_value or 0.0)
    if param.type in ("uniform", "quniform"):
        return FloatDistribution(low, high)
    _check_exp(name, param, high)  # loguniform, qloguniform: the bounds are exponents
    return FloatDistribution(math.exp(low), math.exp(high), log=True)


def _check_exp(name: str, param: SearchParam, exponent: float) -> None:
    """Refuse at submission an exponent that would overflow at some trial."""
    if exponent > _MAX_EXPONENT:
        raise InvalidInput(
            f"{param.type} parameter {name!r}: exp({exponent:g}) is too large for a float",
            hint="loguniform's bounds and lognormal's mu and sigma are natural logarithms",
        )


def _check_choice(name: str, values: list[object]) -> None:
    """Only scalars can be a command's input; catch a list or mapping before trial 0."""
    for value in values:
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(
                f"choice parameter {name!r} has a {type(value).__name__} value; "
                "a trial input takes a string, number or boolean"
            )


def _value(param: SearchParam, raw: object) -> ParamValue:
    if param.type == "choice":
        chosen: ParamValue = (param.values or [])[_as_int(raw)]
        return chosen
    if param.type == "randint":
        return _as_int(raw)
    value = _as_float(raw)
    if param.type in _NORMAL_FAMILY:
        value = _normal(param, value)
        if "lognormal" in param.type:
            value = math.exp(value)
    if param.q is not None:
        return quantize(value, param.q)
    return value


def _normal(param: SearchParam, quantile: float) -> float:
    return NormalDist(param.mu or 0.0, param.sigma or 1.0).inv_cdf(quantile)


def quantize(value: float, q: float) -> int | float:
    """Azure's ``round(value / q) * q``: an int for integral q, else a float without
    binary noise (``3 * 0.1`` is 0.3, not 0.30000000000000004)."""
    steps = round(value / q)
    if float(q).is_integer():
        return steps * int(q)
    return float(Decimal(steps) * Decimal(str(q)))


def _as_int(raw: object) -> int:
    if isinstance(raw, int | float):
        return int(raw)
    raise TypeError(f"expected a number from the sampler, got {raw!r}")


def _as_float(raw: object) -> float:
    if isinstance(raw, int | float):
        return float(raw)
    raise TypeError(f"expected a number from the sampler, got {raw!r}")
