"""Early termination: Azure ML's bandit, median stopping and truncation selection policies.

Azure's vocabulary, kept here: each value a trial logs for the primary metric is
one *interval*. A policy judges a trial when it reaches an interval n that is a
multiple of ``evaluation_interval`` and at least ``delay_evaluation`` ("the
policy applies every multiple of evaluation_interval that is greater than or
equal to delay_evaluation"). Steps the script passes to ``log_metric`` do not
matter, only the count of values (non-finite values are not counted).

At interval n the *cohort* is every trial that has reached n, running or
finished, the judged trial included, each seen through its first n values. A
trial's *performance* at n is the best of its first n values: Azure compares
"its best metric at interval n". Restricting the cohort to trials at n keeps
comparisons like for like: a trial that has only logged 2 values is not held
against one that has logged 10.

- **bandit** stops a trial whose performance is outside the slack of the best
  performance in the cohort. Azure states the maximize case: with
  ``slack_factor`` s the limit is ``best / (1 + s)`` (its example: 0.8 and
  s = 0.2 give 0.66), with ``slack_amount`` a it is ``best - a``. Keel mirrors
  them for minimize: ``best * (1 + s)`` and ``best + a``. A ratio means nothing
  for a negative best, so the allowed distance is taken on ``abs(best)``; for a
  positive best these are exactly the formulas above, and the best trial is
  never stopped whatever the sign.
- **median stopping** stops a trial whose performance is worse than the median,
  over the cohort, of each trial's running average of its first n values
  (Azure: "its best primary metric is worse than the median of the running
  averages over intervals 1:n across all training jobs").
- **truncation selection** stops a trial in the lowest ``truncation_percentage``
  percent of the cohort by performance: floor(size * percentage / 100) trials,
  none while that is 0; a trial tied with others is stopped only when that many
  trials are strictly better than it would leave it in the lowest group.
  Finished trials count (Azure's ``exclude_finished_jobs`` defaults to false).

Sources: Azure ML's ``reference-yaml-job-sweep.md`` and
``how-to-tune-hyperparameters.md``, and the ``azureml.train.hyperdrive``
BanditPolicy reference, which states the slack test as "compare (Y + Y * s)
to the best, and if smaller, cancel".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Literal, NamedTuple

from keel.specs.models import EarlyTermination

Goal = Literal["maximize", "minimize"]


class Standing(NamedTuple):
    """A trial seen through its first n values: their best and their mean."""

    best: float
    mean: float


class Curve:
    """One trial's primary-metric values, kept as running highs, lows and sums, so that
    judging a trial against the cohort costs one lookup per trial, whatever the interval."""

    __slots__ = ("_highs", "_lows", "_sums")

    def __init__(self) -> None:
        self._highs: list[float] = []
        self._lows: list[float] = []
        self._sums: list[float] = []

    def append(self, value: float) -> None:
        if self._sums:
            self._highs.append(max(self._highs[-1], value))
            self._lows.append(min(self._lows[-1], value))
            self._sums.append(self._sums[-1] + value)
        else:
            self._highs.append(value)
            self._lows.append(value)
            self._sums.append(value)

    def __len__(self) -> int:
        return len(self._sums)

    def standing(self, interval: int, goal: Goal) -> Standing:
        """Best and mean of the first ``interval`` values (intervals count from 1)."""
        i = interval - 1
        best = self._highs[i] if goal == "maximize" else self._lows[i]
        return Standing(best=best, mean=self._sums[i] / interval)


@dataclass(frozen=True)
class Policy(ABC):
    """When to judge and how to rank; subclasses decide whom the cohort condemns."""

    goal: Goal
    evaluation_interval: int = 1
    delay_evaluation: int = 0

    @property
    @abstractmethod
    def label(self) -> str:
        """The policy and its setting, as a stop reason names it."""

    def due(self, interval: int) -> bool:
        """Whether the policy applies at this interval (intervals count from 1)."""
        return interval >= max(1, self.delay_evaluation) and interval % self.evaluation_interval == 0

    def verdict(self, number: int, curves: Mapping[int, Curve]) -> str | None:
        """Why trial ``number`` should stop at the interval it has reached, or None."""
        interval = len(curves[number])
        if not self.due(interval):
            return None
        cohort = {n: c.standing(interval, self.goal) for n, c in curves.items() if len(c) >= interval}
        why = self._judge(number, cohort)
        if why is None:
            return None
        return f"early termination: {self.label} at interval {interval}: {why}"

    @abstractmethod
    def _judge(self, number: int, cohort: dict[int, Standing]) -> str | None:
        """Why the cohort condemns trial ``number``, or None."""

    def best(self, values: Sequence[float]) -> float:
        return max(values) if self.goal == "maximize" else min(values)

    def worse(self, value: float, than: float) -> bool:
        return value < than if self.goal == "maximize" else value > than


@dataclass(frozen=True)
class BanditPolicy(Policy):
    slack_factor: float | None = None
    slack_amount: float | None = None

    @property
    def label(self) -> str:
        if self.slack_amount is not None:
            return f"bandit policy, slack_amount {self.slack_amount:g}"
        return f"bandit policy, slack_factor {self.slack_factor:g}"

    def limit(self, best: float) -> float:
        """The worst performance still within the slack of ``best``."""
        if self.slack_amount is not None:
            margin = self.slack_amount
        elif self.goal == "maximize":  # best / (1 + s) when best > 0
            margin = abs(best) * (self.slack_factor or 0.0) / (1 + (self.slack_factor or 0.0))
        else:  # best * (1 + s) when best > 0
            margin = abs(best) * (self.slack_factor or 0.0)
        return best - margin if self.goal == "maximize" else best + margin

    def _judge(self, number: int, cohort: dict[int, Standing]) -> str | None:
        mine = cohort[number].best
        leader = self.best([standing.best for standing in cohort.values()])
        limit = self.limit(leader)
        if not self.worse(mine, limit):
            return None
        return f"best so far {mine:.6g} is worse than {limit:.6g}, the slack from the best {leader:.6g}"


@dataclass(frozen=True)
class MedianStoppingPolicy(Policy):
    @property
    def label(self) -> str:
        return "median stopping policy"

    def _judge(self, number: int, cohort: dict[int, Standing]) -> str | None:
        middle = median(standing.mean for standing in cohort.values())
        mine = cohort[number].best
        if not self.worse(mine, middle):
            return None
        return (
            f"best so far {mine:.6g} is worse than {middle:.6g}, "
            f"the median of {len(cohort)} trials' running averages"
        )


@dataclass(frozen=True)
class TruncationSelectionPolicy(Policy):
    truncation_percentage: int = 0

    @property
    def label(self) -> str:
        return f"truncation selection policy, truncation_percentage {self.truncation_percentage}"

    def _judge(self, number: int, cohort: dict[int, Standing]) -> str | None:
        performance = {n: standing.best for n, standing in cohort.items()}
        cut = len(performance) * self.truncation_percentage // 100
        mine = performance[number]
        ahead = sum(1 for value in performance.values() if self.worse(mine, value))
        if cut == 0 or ahead < len(performance) - cut:
            return None
        return (
            f"best so far {mine:.6g} is in the lowest {self.truncation_percentage}% "
            f"({ahead} of {len(performance)} trials are better)"
        )


def build_policy(spec: EarlyTermination | None, goal: Goal) -> Policy | None:
    """The policy a sweep's ``early_termination`` describes, or None for no policy."""
    if spec is None:
        return None
    timing = {
        "evaluation_interval": spec.evaluation_interval,
        "delay_evaluation": spec.delay_evaluation,
    }
    if spec.type == "bandit":
        return BanditPolicy(goal, **timing, slack_factor=spec.slack_factor, slack_amount=spec.slack_amount)
    if spec.type == "median_stopping":
        return MedianStoppingPolicy(goal, **timing)
    return TruncationSelectionPolicy(goal, **timing, truncation_percentage=spec.truncation_percentage or 0)
