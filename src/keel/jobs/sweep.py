"""Sweeps: which trial runs next, which trial stops early, which trial won.

Two halves, apart from how trials actually run:

- :class:`SweepEngine` turns a :class:`~keel.specs.resolved.SweepPlan` into
  trials. It wraps an in-memory Optuna study (random, Sobol, grid or TPE
  sampling), takes each trial's primary-metric values as they are logged,
  applies the early-termination policy (:mod:`keel.jobs.sweep_policies`) and
  keeps score.
- :func:`run_sweep` drives an engine against a :class:`TrialLauncher`: it keeps
  up to ``max_concurrent_trials`` trials running, feeds their metrics to the
  engine, cancels the trials the policy condemns and those past
  ``trial_timeout``, stops everything at the sweep's ``timeout``, and returns a
  :class:`SweepOutcome`. The job runner implements the launcher with child
  jobs and processes; the tests, with scripted in-memory trials.

Azure ML's semantics are the spec. Where Keel departs, it is on purpose:

- bayesian sampling with an early-termination policy is refused, as Azure
  refuses it: a stopped trial's partial value would be taught to the model as
  if it were final, and a YAML Keel accepted would then fail on Azure;
- bayesian sampling accepts every parameter type (Azure: only choice, uniform,
  quniform); the others are sampled through the transforms in
  :mod:`keel.jobs.sweep_space`, and :attr:`SweepEngine.notices` says so.
"""

from __future__ import annotations

import importlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal, Protocol

import optuna
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, Trial, TrialState

from keel.errors import Conflict, InvalidInput
from keel.jobs import sweep_space
from keel.jobs.sweep_policies import Curve, Goal, Policy, build_policy
from keel.jobs.sweep_space import ParamValue
from keel.specs.models import SamplingAlgorithm, SearchParam
from keel.specs.resolved import SweepPlan

__all__ = [
    "EngineState",
    "ParamValue",
    "SweepEngine",
    "SweepOutcome",
    "SweepTrial",
    "TrialHandle",
    "TrialLauncher",
    "TrialOutcome",
    "TrialStatus",
    "run_sweep",
]

EngineState = Literal["completed", "failed", "stopped"]
TrialStatus = Literal["completed", "failed", "canceled"]
# A canceled trial was stopped (by the policy, a timeout or a person): it still counts.
_ENGINE_STATE: dict[TrialStatus, EngineState] = {
    "completed": "completed",
    "failed": "failed",
    "canceled": "stopped",
}


@dataclass(frozen=True)
class SweepTrial:
    """One trial to run: its number in the sweep (from 0) and its parameter values."""

    number: int
    params: dict[str, ParamValue]


@dataclass
class _Record:
    trial: Trial
    params: dict[str, ParamValue]
    curve: Curve = field(default_factory=Curve)
    state: EngineState | None = None
    value: float | None = None
    stop_reason: str | None = None


# -- the engine --------------------------------------------------------------------------


class SweepEngine:
    """Samples trials for a sweep plan and keeps their scores; knows nothing of processes."""

    def __init__(self, plan: SweepPlan) -> None:
        _check_plan(plan)
        self.plan = plan
        self.goal: Goal = plan.objective.goal
        self.policy: Policy | None = build_policy(plan.early_termination, self.goal)
        self.total_trials = _total_trials(plan)
        self.notices: tuple[str, ...] = _notices(plan)
        self._distributions = sweep_space.distributions(plan.search_space)
        with _quiet_optuna():
            self._study = optuna.create_study(
                sampler=_sampler(plan.sampling, plan.search_space), direction=self.goal
            )
        self._records: dict[int, _Record] = {}

    def next_trial(self) -> SweepTrial | None:
        """The next trial's parameters, or None once max_total_trials (or the grid) is spent."""
        if len(self._records) >= self.total_trials:
            return None
        trial = self._study.ask(self._distributions)
        params = sweep_space.trial_values(self.plan.search_space, trial.params)
        number = len(self._records)
        self._records[number] = _Record(trial=trial, params=params)
        return SweepTrial(number=number, params=dict(params))

    def report(self, number: int, step: int, value: float) -> None:
        """One logged value of the primary metric. Intervals count values, not steps (Azure:
        each time the script logs the metric is one interval); NaN and infinities are skipped."""
        if math.isfinite(value):
            self._records[number].curve.append(float(value))

    def intervals(self, number: int) -> int:
        """How many values of the primary metric the trial has reported."""
        return len(self._records[number].curve)

    def should_stop(self, number: int) -> bool:
        """Whether the policy stops the trial at the interval it has reached (see stop_reason)."""
        record = self._records[number]
        if self.policy is None or record.state is not None:
            return False
        curves = {n: r.curve for n, r in self._records.items()}
        verdict = self.policy.verdict(number, curves)
        if verdict is not None:
            record.stop_reason = verdict
        return verdict is not None

    def stop_reason(self, number: int) -> str | None:
        """Why the policy condemned the trial, e.g. "early termination: bandit policy…"."""
        return self._records[number].stop_reason

    def finish(self, number: int, *, value: float | None, state: EngineState) -> None:
        """Record how a trial ended. A stopped trial counts with its last value, as in Azure;
        a trial without a finite value counts as failed."""
        record = self._records[number]
        if record.state is not None:
            raise Conflict(f"trial {number} has already finished ({record.state})")
        usable = value is not None and math.isfinite(value) and state != "failed"
        record.state = state if usable else "failed"
        record.value = float(value) if usable and value is not None else None
        told = TrialState.COMPLETE if usable else TrialState.FAIL
        self._study.tell(record.trial, record.value, state=told)

    def best(self) -> tuple[int, float] | None:
        """The best trial's number and value per the goal; the earlier trial wins a tie."""
        scored = [(n, r.value) for n, r in self._records.items() if r.value is not None]
        if not scored:
            return None
        sign = -1.0 if self.goal == "maximize" else 1.0
        return min(scored, key=lambda item: (sign * item[1], item[0]))


def _check_plan(plan: SweepPlan) -> None:
    sampling = plan.sampling
    if sampling.rule == "sobol" and sampling.type != "random":
        raise InvalidInput(
            f"rule: sobol applies to random sampling, not {sampling.type}",
            hint="remove rule, or use sampling_algorithm type: random",
        )
    if sampling.type == "bayesian" and plan.early_termination is not None:
        raise InvalidInput(
            "bayesian sampling does not support early_termination",
            hint="Azure ML refuses it too: a stopped trial's partial value would mislead the "
            "model; remove early_termination, or use random or grid sampling",
        )
    if sampling.type == "grid":
        sweep_space.grid(plan.search_space)  # raises for a parameter that is not a choice


def _total_trials(plan: SweepPlan) -> int:
    limit = plan.limits.max_total_trials
    if plan.sampling.type == "grid":
        return min(limit, sweep_space.grid_size(plan.search_space))
    return limit


def _notices(plan: SweepPlan) -> tuple[str, ...]:
    if plan.sampling.type != "bayesian":
        return ()
    return tuple(
        f"bayesian sampling of {name!r} ({param.type}): Azure ML accepts only choice, uniform "
        "and quniform here; Keel samples it too"
        for name, param in plan.search_space.items()
        if param.type not in sweep_space.AZURE_BAYESIAN_TYPES
    )


def _sampler(sampling: SamplingAlgorithm, space: dict[str, SearchParam]) -> BaseSampler:
    if sampling.type == "grid":
        return _AskTellGridSampler(sweep_space.grid(space), seed=sampling.seed)
    if sampling.type == "bayesian":
        with _optuna_experimental():
            # Optuna 5's defaults, asked for by name so 4.x behaves the same: a joint model of
            # the parameters, and running trials counted as bad ("constant liar") so that
            # concurrent trials are not all sent to the same promising spot.
            return TPESampler(seed=sampling.seed, multivariate=True, constant_liar=True)
    if sampling.rule == "sobol":
        return _sobol_sampler(sampling.seed)
    return RandomSampler(seed=sampling.seed)


def _sobol_sampler(seed: int | None) -> BaseSampler:
    """Scrambled Sobol: the seed then picks the sequence, so a seeded sweep repeats.
    Optuna samples the first trial at random and follows the sequence from the second."""
    try:
        # QMCSampler imports scipy lazily, at trial 1; fail at submission instead.
        importlib.import_module("scipy.stats.qmc")
    except ImportError:
        raise InvalidInput(
            "rule: sobol needs scipy, which is not installed", hint="pip install scipy"
        ) from None
    with _optuna_experimental():
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )


class _AskTellGridSampler(GridSampler):
    """GridSampler without its end-of-grid ``study.stop()``, which only works inside
    ``optimize()`` and raises under ask-and-tell; the engine counts the grid itself."""

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


@contextmanager
def _optuna_experimental() -> Iterator[None]:
    """Silence ExperimentalWarning: QMCSampler, and in Optuna 4 TPE's multivariate and
    constant_liar, are marked experimental though stable for years; pyproject bounds
    Optuna to the versions these tests ran on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Hide Optuna's "A new study created in memory" line: the study is an internal detail."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


# -- the driver --------------------------------------------------------------------------


class TrialHandle(Protocol):
    """A started trial, as the runner sees it. After ``cancel()``, ``done()`` must turn
    true in bounded time (the runner escalates to a kill); the driver waits for it."""

    def done(self) -> bool: ...

    def final_status(self) -> TrialStatus:
        """How the trial ended, once done: "canceled" whenever cancel() ended it, even if
        the process exited non-zero on its way out (the stop reason hangs on that)."""
        ...

    def metric_history(self, key: str) -> Sequence[tuple[int, float]]:
        """Every (step, value) logged so far for ``key``, in the order logged: the driver
        feeds the values past those it has seen, and takes the last as the objective."""
        ...

    def cancel(self, reason: str) -> None: ...


class TrialLauncher(Protocol):
    """Starts a trial with its parameter values bound to the trial component's inputs.
    A trial that cannot start should come back as a handle already done and failed."""

    def start(self, trial: SweepTrial) -> TrialHandle: ...


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended. ``value`` is the objective: the primary metric's last logged
    value, None when the trial failed or never logged it (``note`` says which)."""

    number: int
    params: dict[str, ParamValue]
    status: TrialStatus
    value: float | None
    intervals: int
    duration: float
    stop_reason: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class SweepOutcome:
    """Every trial by number, the best one (None if no trial scored), and whether the
    sweep's timeout ended it."""

    trials: tuple[TrialOutcome, ...]
    best: TrialOutcome | None
    timed_out: bool
    duration: float
    notices: tuple[str, ...] = ()


def run_sweep(
    engine: SweepEngine,
    launcher: TrialLauncher,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_interval: float = 0.2,
    default_concurrency: int | None = None,
) -> SweepOutcome:
    """Run a sweep to its end: trials exhausted, or the sweep's timeout reached.

    Limits and objective come from ``engine.plan``. ``default_concurrency`` applies
    when the plan sets no ``max_concurrent_trials`` (Azure then runs them all at
    once; the runner may prefer its executor's size). If the driver itself fails or
    is interrupted, it cancels the running trials before the error propagates.
    """
    driver = _Driver(engine, launcher, clock=clock, default_concurrency=default_concurrency)
    try:
        while driver.tick():
            sleep(poll_interval)
    except BaseException:
        driver.abandon()
        raise
    return driver.outcome()


@dataclass
class _Running:
    trial: SweepTrial
    handle: TrialHandle
    started: float
    seen: int = 0
    cancel_reason: str | None = None


class _Driver:
    """The state of one run_sweep call; one tick polls, cancels, then starts."""

    def __init__(
        self,
        engine: SweepEngine,
        launcher: TrialLauncher,
        *,
        clock: Callable[[], float],
        default_concurrency: int | None,
    ) -> None:
        limits = engine.plan.limits
        self.engine, self.launcher, self.clock = engine, launcher, clock
        self.metric = engine.plan.objective.primary_metric
        self.concurrency = limits.max_concurrent_trials or default_concurrency or limits.max_total_trials
        self.started = clock()
        self.running: dict[int, _Running] = {}
        self.finished: dict[int, TrialOutcome] = {}
        self.timed_out = False
        self.exhausted = False

    def tick(self) -> bool:
        """One round; False once nothing runs and nothing more will start."""
        now = self.clock()
        timeout = self.engine.plan.limits.timeout
        if not self.timed_out and timeout is not None and now - self.started >= timeout:
            self.timed_out = True
            for run in self.running.values():
                self._cancel(run, f"sweep timeout: the sweep reached its limit of {timeout:g}s")
        for run in list(self.running.values()):
            self._poll(run, now)
        if not self.timed_out:
            self._launch(now)
        return bool(self.running)

    def _launch(self, now: float) -> None:
        while not self.exhausted and len(self.running) < self.concurrency:
            trial = self.engine.next_trial()
            if trial is None:
                self.exhausted = True
                return
            handle = self.launcher.start(trial)
            self.running[trial.number] = _Running(trial=trial, handle=handle, started=now)

    def _poll(self, run: _Running, now: float) -> None:
        done = run.handle.done()
        self._feed(run, judge=not done)
        if done:
            self._finish(run, now)
            return
        limit = self.engine.plan.limits.trial_timeout
        if run.cancel_reason is None and limit is not None and now - run.started >= limit:
            self._cancel(run, f"trial timeout: ran {now - run.started:g}s, limit {limit:g}s")

    def _feed(self, run: _Running, *, judge: bool) -> None:
        """Give the engine the values logged since the last poll, judging after each one
        so a policy decides at the very interval where it applies."""
        history = run.handle.metric_history(self.metric)
        number = run.trial.number
        for step, value in history[run.seen :]:
            self.engine.report(number, step, value)
            if judge and run.cancel_reason is None and self.engine.should_stop(number):
                self._cancel(run, self.engine.stop_reason(number) or "early termination")
        run.seen = len(history)

    def _cancel(self, run: _Running, reason: str) -> None:
        if run.cancel_reason is None:
            run.cancel_reason = reason
            run.handle.cancel(reason)

    def _finish(self, run: _Running, now: float) -> None:
        del self.running[run.trial.number]
        status = run.handle.final_status()
        value, note = self._objective(run, status)
        state = _ENGINE_STATE[status]
        self.engine.finish(run.trial.number, value=value, state=state)
        reason = run.cancel_reason if status == "canceled" else None
        if status == "canceled" and reason is None:
            reason = "canceled outside the sweep"
        if status != "canceled" and run.cancel_reason is not None:
            note = _join(note, f"ended {status} before its cancel took effect")
        self.finished[run.trial.number] = TrialOutcome(
            number=run.trial.number,
            params=run.trial.params,
            status=status,
            value=value,
            intervals=self.engine.intervals(run.trial.number),
            duration=now - run.started,
            stop_reason=reason,
            note=note,
        )

    def _objective(self, run: _Running, status: TrialStatus) -> tuple[float | None, str | None]:
        """The last logged value of the primary metric, if the trial can be scored."""
        if status == "failed":
            return None, "the trial failed; it is not scored"
        history = run.handle.metric_history(self.metric)
        if not history:
            return None, f"never logged the primary metric {self.metric!r}; counted as failed"
        last = float(history[-1][1])
        if not math.isfinite(last):
            return None, f"the last value of {self.metric!r} is {last}; counted as failed"
        return last, None

    def abandon(self) -> None:
        """Cancel whatever still runs, best effort: the driver is going down with an error."""
        for run in self.running.values():
            with suppress(Exception):
                self._cancel(run, "the sweep driver stopped with an error")

    def outcome(self) -> SweepOutcome:
        trials = tuple(self.finished[n] for n in sorted(self.finished))
        best = self.engine.best()
        return SweepOutcome(
            trials=trials,
            best=None if best is None else self.finished[best[0]],
            timed_out=self.timed_out,
            duration=self.clock() - self.started,
            notices=self.engine.notices,
        )


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"
