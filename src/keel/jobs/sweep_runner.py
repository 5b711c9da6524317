"""A sweep step: the sweep engine's trials run as child jobs, each a real command.

Each trial is a job named ``<sweep>_<n>`` (as in Azure ML) whose sampled values
are recorded as its params and bound to the trial component's inputs. The engine
reads each trial's primary metric from what the trial logged (through MLflow or
the Keel SDK) and stops trials its policy condemns. The best trial is tagged, and
its outputs become the sweep's outputs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from keel.errors import KeelError
from keel.jobs import records
from keel.jobs.command import Processes, StepResult, run_command
from keel.jobs.graph import Node, Value
from keel.jobs.sweep import SweepEngine, SweepOutcome, SweepTrial, TrialOutcome, TrialStatus, run_sweep
from keel.specs.resolved import Step
from keel.tracking import jobs as job_ops
from keel.tracking.entities import JobStatus
from keel.tracking.metrics import get_metric_history

if TYPE_CHECKING:
    from keel.jobs.runner import Runner

_STATUS: dict[JobStatus, TrialStatus] = {
    JobStatus.COMPLETED: "completed",
    JobStatus.CANCELED: "canceled",
    JobStatus.FAILED: "failed",
}


class _Trial:
    """A running trial: its job, the thread waiting on its process, and its own cancel switch."""

    def __init__(self, runner: Runner, sweep: Node, trial: SweepTrial, pool: ThreadPoolExecutor) -> None:
        self.runner = runner
        self.trial = trial
        self.canceled_because: str | None = None
        path = f"{sweep.path}/trial_{trial.number}" if sweep.path else f"trial_{trial.number}"
        self.node = Node(path, _trial_step(sweep.step, trial), sweep.path)
        self.node.job_id, self.node.job_name, self.location = records.create_child(
            runner.store,
            runner.experiment,
            parent_id=sweep.job_id,
            name=f"{sweep.job_name}_{trial.number}",
            display_name=f"trial {trial.number}",
            kind="command",
            step_name=self.node.path,
            user_id=runner.user_id,
        )
        self.node.inputs = {
            **sweep.inputs,
            **{k: _literal(sweep.step, k, v) for k, v in trial.params.items()},
        }
        job_ops.log_params(runner.store, self.node.job_id, {k: v for k, v in trial.params.items()})
        self.processes = Processes()
        self.future: Future[StepResult] = pool.submit(self._run)

    def _run(self) -> StepResult:
        context = dataclasses.replace(self.runner.context, processes=self.processes)
        records.mark_running(self.runner.store, self.node, environment=None)
        self.runner.heart.keep_alive(self.node.job_id)
        try:
            result = run_command(context, self.node, self.location)
        except KeelError as exc:
            result = StepResult(JobStatus.FAILED, reason=str(exc))
        self.runner.heart.let_go(self.node.job_id)
        if self.canceled_because is not None:
            result = dataclasses.replace(result, status=JobStatus.CANCELED, reason=self.canceled_because)
        self.node.outputs = result.outputs
        status = result.status
        records.mark_finished(
            self.runner.store,
            self.node,
            records.Outcome(status=status, reason=result.reason, exit_code=result.exit_code),
        )
        return result

    # -- the TrialHandle protocol -------------------------------------------------------

    def done(self) -> bool:
        return self.future.done()

    def final_status(self) -> TrialStatus:
        if self.canceled_because is not None:
            return "canceled"
        return _STATUS.get(self.future.result().status, "failed")

    def metric_history(self, key: str) -> Sequence[tuple[int, float]]:
        points = get_metric_history(self.runner.store, self.node.job_id, key)
        return [(point.step, point.value) for point in points]

    def cancel(self, reason: str) -> None:
        self.canceled_because = reason
        self.processes.cancel_all()


class _Launcher:
    def __init__(self, runner: Runner, sweep: Node, pool: ThreadPoolExecutor) -> None:
        self.runner, self.sweep, self.pool = runner, sweep, pool
        self.trials: dict[int, _Trial] = {}
        self.lock = threading.Lock()

    def start(self, trial: SweepTrial) -> _Trial:
        handle = _Trial(self.runner, self.sweep, trial, self.pool)
        with self.lock:
            self.trials[trial.number] = handle
        return handle


def run_sweep_step(runner: Runner, node: Node) -> StepResult:
    """Run the sweep to its end; the step's result carries the best trial's outputs."""
    plan = node.step.sweep
    if plan is None:
        return StepResult(JobStatus.FAILED, reason="a sweep step without a sweep plan")
    try:
        engine = SweepEngine(plan)
    except KeelError as exc:
        return StepResult(JobStatus.FAILED, reason=str(exc))
    concurrency = plan.limits.max_concurrent_trials or runner.pool._max_workers
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="keel-trial") as pool:
        launcher = _Launcher(runner, node, pool)
        cancel_watch = threading.Thread(target=_forward_cancel, args=(runner, launcher), daemon=True)
        cancel_watch.start()
        outcome = run_sweep(engine, launcher, default_concurrency=concurrency, poll_interval=0.1)
    return _result(runner, node, outcome, launcher)


def _forward_cancel(runner: Runner, launcher: _Launcher) -> None:
    """A cancel of the whole run stops every trial (they have their own process switches)."""
    runner.context.processes.canceled.wait()
    with launcher.lock:
        trials = list(launcher.trials.values())
    for trial in trials:
        trial.cancel("canceled")


def _result(runner: Runner, node: Node, outcome: SweepOutcome, launcher: _Launcher) -> StepResult:
    objective = node.step.sweep.objective if node.step.sweep else None
    metric = objective.primary_metric if objective else "objective"
    tags = {"keel.trials": str(len(outcome.trials))}
    if outcome.notices:
        tags["keel.sweep_notices"] = "; ".join(outcome.notices)
    if outcome.best is None:
        job_ops.set_tags(runner.store, node.job_id, tags)
        failure = "no trial logged a usable value of " + metric + _first_note(outcome.trials)
        return StepResult(JobStatus.FAILED, reason=failure)
    best = launcher.trials[outcome.best.number]
    tags |= {"keel.best_trial": best.node.job_name, f"keel.best_{metric}": repr(outcome.best.value)}
    job_ops.set_tags(runner.store, node.job_id, tags)
    job_ops.set_tags(runner.store, best.node.job_id, {"keel.best_trial": "true"})
    _log_best(runner, node, outcome.best, metric)
    status = JobStatus.COMPLETED
    reason: str | None = (
        f"timed out after {node.step.timeout:g} s; best trial so far kept" if outcome.timed_out else None
    )
    return StepResult(status, reason=reason, outputs=dict(best.node.outputs))


def _log_best(runner: Runner, node: Node, best: TrialOutcome, metric: str) -> None:
    from keel.clock import now_ms
    from keel.tracking.metrics import write_metrics

    if best.value is not None:
        write_metrics(runner.store, [(node.job_id, f"best_{metric}", float(best.value), now_ms(), 0)])
    job_ops.log_params(runner.store, node.job_id, {f"best.{k}": v for k, v in best.params.items()})


def _first_note(trials: Sequence[TrialOutcome]) -> str:
    notes = [trial.note for trial in trials if trial.note]
    return f" ({notes[0]})" if notes else ""


def _trial_step(sweep: Step, trial: SweepTrial) -> Step:
    return sweep.model_copy(
        update={
            "kind": "command",
            "sweep": None,
            "timeout": sweep.sweep.limits.trial_timeout if sweep.sweep else None,
        }
    )


def _literal(step: Step, name: str, value: object) -> Value:
    decl = step.component.inputs.get(name)
    return Value(type=decl.type if decl else "string", literal=value)
