"""The runner: executes a submitted job's graph, recording every step as a job.

One loop owns the graph. It starts each node whose inputs are ready (reusing a
completed twin when the reuse key matches), hands commands to the executor (a
thread pool whose threads wait on subprocesses), records each result in one
transaction, and stops the rest when a step fails (unless the pipeline says
``continue_on_step_failure``). A cancel request on the job stops every process
group it started. The runner keeps its jobs' heartbeats, so if it is killed they
are failed by the next reader, and ``keel job rerun --from-failed`` resumes.

Approval steps (``type: approval``) open a request and wait; when nothing else can
run, the runner records the pipeline as ``paused`` and returns. A runner started
with ``resume=True`` takes the paused pipeline up again: finished steps keep their
records and outputs, and the rest runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keel.clock import now_ms
from keel.errors import InternalError, KeelError
from keel.jobs import records
from keel.jobs.command import TIMED_OUT, RunContext, StepResult, run_command
from keel.jobs.content import DigestCache, is_committed, local_copy
from keel.jobs.endpoint import TrackingEndpoint
from keel.jobs.graph import Node, State, Value, children, flatten, waits_for
from keel.jobs.inprocess import in_process_target, run_in_process
from keel.jobs.inputs import InputResolver
from keel.jobs.reuse import cache_key, environment_label
from keel.specs.resolved import ResolvedJob
from keel.tracking.entities import JobStatus
from keel.tracking.experiments import get_experiment
from keel.tracking.jobs import get_job_by_id, job_artifact_location, set_job_status
from keel.tracking.writer import MetricWriter
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.approvals.gate import Gates

_log = logging.getLogger(__name__)
_CANCEL_POLL_SECONDS = 0.5
_WRITE_BATCH = 64
_WRITE_DELAY_SECONDS = 0.05
_STATUS_OF = {
    State.COMPLETED: JobStatus.COMPLETED,
    State.FAILED: JobStatus.FAILED,
    State.CANCELED: JobStatus.CANCELED,
}


@dataclass(frozen=True)
class PreviousStep:
    """A step of an earlier run of the same job, for ``rerun --from-failed``."""

    job_id: int
    job_name: str
    status: JobStatus


class Runner:
    """Runs the job ``root_id`` (already recorded, with its resolved spec) to the end."""

    def __init__(
        self,
        workspace: Workspace,
        root_id: int,
        spec: ResolvedJob,
        *,
        previous: dict[str, PreviousStep] | None = None,
        resume: bool = False,
    ) -> None:
        self.workspace = workspace
        self.resuming = resume
        self.replayed: set[str] = set()  # finished before a pause: run through again, not rewritten
        self.begun: set[str] = set()  # started before a pause: they keep their start times
        self.paused = False
        self.store = workspace.store
        self.spec = spec
        self.previous = previous or {}
        root = get_job_by_id(self.store, root_id)
        self.user_id = root.user_id
        self.experiment = get_experiment(self.store, root.experiment_id)
        self.nodes = flatten(spec.root)
        self.root = self.nodes[""]
        self.root.job_id, self.root.job_name = root.id, root.name
        self.locations: dict[str, str] = {"": root.artifact_location}
        scratch = workspace.config.root / "runs"
        self.endpoint = TrackingEndpoint(workspace)
        self.context = RunContext(
            workspace=workspace,
            artifacts=workspace.artifacts,
            digests=DigestCache(self.store),
            scratch=scratch,
            cache=workspace.config.root / "cache",
            tracking_uri=self.endpoint.url,
            experiment_id=root.experiment_id,
            on_process=lambda node, pid: records.note_process(self.store, node, pid),
        )
        from keel.data.job_data import input_plugin  # data assets and datastores plug in here

        plugin = input_plugin(workspace, self.context.cache, self.context.digests)
        self.inputs = InputResolver(
            self.store, workspace.artifacts, self.context.digests, self.context.cache, plugins=[plugin]
        )
        self.heart = MetricWriter(self.store)
        self.futures: dict[Future[StepResult], Node] = {}
        self.started: dict[str, int] = {}
        self.unwritten: list[tuple[Node, records.Outcome]] = []
        self.unwritten_since = 0.0
        self.stopping = False
        self.gates: Gates | None = None
        if any(node.step.kind == "approval" for node in self.nodes.values()):
            from keel.approvals.gate import Gates

            self.gates = Gates(workspace, self.root)
        limit = spec.settings.max_concurrency or os.cpu_count() or 2
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="keel-step")

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> JobStatus:
        """Execute the graph; returns the root job's final status (``paused`` if it waits)."""
        if self.resuming:
            self._restore()
        else:
            records.create_step_jobs(self.store, self.experiment, self.nodes, self.root, user_id=self.user_id)
        self._locate_artifacts()
        self.heart.keep_alive(self.root.job_id)
        if not self.resuming:
            records.mark_running(self.store, self.root, environment=None)
            self.started[""] = now_ms()
        self._announce(JobStatus.RUNNING)
        try:
            self._loop()
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self.pool.shutdown(wait=True)
            self.endpoint.stop()
            self.heart.close()
        status = JobStatus.PAUSED if self.paused else _STATUS_OF[self.root.state]
        self._announce(status)
        self._send_due_events()
        return status

    def _announce(self, status: JobStatus) -> None:
        """Queue the webhook event for the pipeline's new status (when anyone subscribed)."""
        from keel.webhooks.events import JOB_EVENTS, job_payload
        from keel.webhooks.outbox import emit, subscribed

        try:
            if subscribed(self.workspace, JOB_EVENTS[status]):
                job = get_job_by_id(self.store, self.root.job_id)
                emit(self.workspace, JOB_EVENTS[status], job_payload(job))
        except KeelError as exc:  # a webhook setting is wrong: say so, the run itself is fine
            _log.warning("webhook event job.%s not queued: %s", status.value, exc)

    def _send_due_events(self) -> None:
        """Send what is due now; retries are left to the outbox (a detached runner waits for them)."""
        from keel.webhooks.outbox import flush

        try:
            flush(self.workspace, within_seconds=0)
        except KeelError as exc:
            _log.warning("webhook deliveries not sent: %s", exc)

    def _loop(self) -> None:
        last_poll = 0.0
        while not self.root.state.finished:
            progressed = self._advance()
            if time.monotonic() - last_poll > _CANCEL_POLL_SECONDS:
                last_poll = time.monotonic()
                if records.job_status(self.store, self.root.job_id) == JobStatus.CANCEL_REQUESTED:
                    self._stop_everything("canceled on request", State.CANCELED)
                progressed |= self._apply_decisions()
            self._write_finished(force=False)
            if self.futures:
                done, _ = wait(list(self.futures), timeout=self._wait_budget(), return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(self.futures.pop(future), future)
            elif not progressed and self.gates is not None and self.gates.waiting and not self.stopping:
                if self._pause():
                    return
                if not self._apply_decisions():
                    time.sleep(0.05)  # asked to stop meanwhile: the next poll sees it
            elif not progressed:
                self._settle_stuck()
        self._write_finished(force=True)

    # -- approval steps -------------------------------------------------------------------

    def _apply_decisions(self) -> bool:
        """Finish the approval steps whose requests were decided."""
        if self.gates is None or not self.gates.waiting:
            return False
        from keel.approvals.gate import passed_on
        from keel.approvals.requests import APPROVED, CANCELED

        decided = self.gates.decided()
        for path, status, reason in decided:
            node = self.nodes[path]
            if status == APPROVED:
                node.outputs = passed_on(node, self.nodes)
                self._finish(node, State.COMPLETED, JobStatus.COMPLETED, reason=reason)
            elif status == CANCELED:
                self._finish(node, State.CANCELED, JobStatus.CANCELED, reason=reason)
            else:
                self._finish(node, State.FAILED, JobStatus.FAILED, reason=reason)
                self._after_failure(node)
        return bool(decided)

    def _pause(self) -> bool:
        """Only approvals are left to wait for: record the pause and let the loop return."""
        assert self.gates is not None
        self._write_finished(force=True)
        pipelines = [node for node in self.nodes.values() if node.is_pipeline and node.state == State.RUNNING]
        self.paused = self.gates.pause(pipelines) is not None
        return self.paused

    def _write_finished(self, *, force: bool) -> None:
        """Write finished steps' records in batches: many quick steps share one transaction,
        and none waits longer than ``_WRITE_DELAY_SECONDS`` to be recorded."""
        if not self.unwritten:
            return
        due = force or len(self.unwritten) >= _WRITE_BATCH
        if due or time.monotonic() - self.unwritten_since >= _WRITE_DELAY_SECONDS:
            batch, self.unwritten = self.unwritten, []
            records.mark_all_finished(self.store, batch)

    def _wait_budget(self) -> float:
        if not self.unwritten:
            return _CANCEL_POLL_SECONDS
        return max(0.0, _WRITE_DELAY_SECONDS - (time.monotonic() - self.unwritten_since))

    def _advance(self) -> bool:
        """Start every node that can start, finish pipelines whose children are done."""
        progressed = False
        for node in list(self.nodes.values()):
            if node.state == State.PENDING and not self.stopping:
                progressed |= self._try_start(node)
            elif node.state == State.RUNNING and node.is_pipeline:
                progressed |= self._try_finish_pipeline(node)
        if self.stopping:
            for node in self.nodes.values():
                if node.state == State.PENDING:
                    self._finish(node, State.CANCELED, JobStatus.CANCELED, reason=self._stop_reason)
                    progressed = True
                elif node.state == State.RUNNING and node.is_pipeline:
                    progressed |= self._try_finish_pipeline(node)
        return progressed

    def _try_start(self, node: Node) -> bool:
        needed = waits_for(node, self.nodes)
        for path in needed:
            other = self.nodes[path]
            if path == node.parent:
                if other.state != State.RUNNING:
                    return False
            elif other.state in (State.FAILED, State.CANCELED):
                self._finish(
                    node,
                    State.CANCELED,
                    JobStatus.CANCELED,
                    reason=f"not run: step {path!r} did not complete",
                )
                return True
            elif other.state != State.COMPLETED:
                return False
        self._start(node)
        return True

    def _start(self, node: Node) -> None:
        try:
            node.inputs = self._resolve_inputs(node)
        except KeelError as exc:
            self._finish(node, State.FAILED, JobStatus.FAILED, reason=f"inputs: {exc}")
            return
        node.state = State.RUNNING
        if node.path not in self.begun:
            self.started[node.path] = now_ms()
        if node.is_pipeline:
            if node is not self.root and node.path not in self.replayed:
                records.mark_running(self.store, node, keep_start=self.resuming)
            return
        if node.step.kind == "approval" and self.gates is not None:
            self.gates.open(node)
            self._apply_decisions()
            return
        if self._reuse(node):
            return
        target = in_process_target(node)
        if target is not None:  # finished in one transaction; no heartbeat for a call
            self.futures[
                self.pool.submit(run_in_process, self.context, node, target, self.locations[node.path])
            ] = node
            return
        environment = environment_label(node.step.component)
        records.mark_running(self.store, node, environment=environment)
        self.heart.keep_alive(node.job_id)
        self.futures[self.pool.submit(self._execute, node)] = node

    def _resolve_inputs(self, node: Node) -> dict[str, Value | None]:
        component = node.step.component
        resolved: dict[str, Value | None] = {}
        for name, decl in component.inputs.items():
            binding = node.step.inputs.get(name)
            resolved[name] = self.inputs.value(node, name, binding, decl, self.nodes)
        return resolved

    def _execute(self, node: Node) -> StepResult:
        if node.step.kind == "sweep":
            from keel.jobs.sweep_runner import run_sweep_step

            return run_sweep_step(self, node)
        if node.step.kind == "data_transfer":
            from keel.data.copy_step import run_copy_step

            return run_copy_step(self, node)
        if node.step.kind == "transform":
            from keel.data.transform import run_transform_step

            return run_transform_step(self, node)
        return run_command(self.context, node, self.locations[node.path])

    # -- results ------------------------------------------------------------------------

    def _collect(self, node: Node, future: Future[StepResult]) -> None:
        try:
            result = future.result()
        except Exception as exc:  # a bug in Keel, reported on the step rather than lost
            _log.error("step %s crashed: %s", node.path, traceback.format_exc())
            result = StepResult(JobStatus.FAILED, reason=f"internal error: {type(exc).__name__}: {exc}")
        self.heart.let_go(node.job_id)
        node.outputs = result.outputs
        state = {JobStatus.COMPLETED: State.COMPLETED, JobStatus.CANCELED: State.CANCELED}.get(
            result.status, State.FAILED
        )
        self._finish(node, state, result.status, reason=result.reason, exit_code=result.exit_code)
        if node.state == State.FAILED:  # the step failed, or registering its outputs did
            self._after_failure(node)

    def _after_failure(self, node: Node) -> None:
        if self.spec.settings.continue_on_step_failure:
            return  # dependents are canceled when they find their input missing
        self._stop_everything(f"not run: step {node.path!r} failed", State.FAILED)

    def _stop_everything(self, reason: str, final: State) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._stop_reason = reason
        self._final_hint = final
        self.context.processes.cancel_all()
        if self.gates is not None:  # nobody needs to decide any more
            for path in self.gates.cancel_all(reason):
                self._finish(self.nodes[path], State.CANCELED, JobStatus.CANCELED, reason=reason)

    _stop_reason = "not run"
    _final_hint = State.FAILED

    def _finish(
        self,
        node: Node,
        state: State,
        status: JobStatus,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        reuse: tuple[int, str] | None = None,
        key: str | None = None,
        note: str | None = None,
    ) -> None:
        if node.path in self.replayed:  # finished before the pause, and recorded then
            node.state, node.reason = state, reason
            return
        if state == State.COMPLETED and any(b.decl.name for b in node.step.outputs.values()):
            from keel.data.job_data import register_outputs  # outputs declared with a name

            problem = register_outputs(self.workspace, node)
            if problem is not None:
                state, status, reason = State.FAILED, JobStatus.FAILED, problem
        node.state, node.reason = state, reason
        outcome = records.Outcome(
            status=status,
            reason=reason,
            exit_code=exit_code,
            cache_key=key if key is not None else node.cache_key,
            reused_from_id=reuse[0] if reuse else None,
            reuse_note=note if note is not None else node.reuse_note,
            started=self.started.get(node.path),
            ended=now_ms(),
        )
        if not self.unwritten:
            self.unwritten_since = time.monotonic()
        self.unwritten.append((node, outcome))
        if node is self.root:
            self._write_finished(force=True)

    def _try_finish_pipeline(self, node: Node) -> bool:
        kids = children(node, self.nodes)
        if not all(kid.state.finished for kid in kids):
            return False
        failed = [kid.path for kid in kids if kid.state == State.FAILED]
        canceled = [kid.path for kid in kids if kid.state == State.CANCELED]
        if self.stopping and self._final_hint == State.CANCELED:
            state, status, reason = State.CANCELED, JobStatus.CANCELED, self._stop_reason
        elif failed:
            state, status = State.FAILED, JobStatus.FAILED
            reason = _failure_summary(failed, self.nodes)
        elif canceled:
            state, status = State.CANCELED, JobStatus.CANCELED
            reason = self._stop_reason if self.stopping else "canceled"
        else:
            state, status, reason = State.COMPLETED, JobStatus.COMPLETED, None
            node.outputs = _pipeline_outputs(node, kids)
        self._finish(node, state, status, reason=reason)
        return True

    def _settle_stuck(self) -> None:
        """Nothing running and nothing startable: what remains can never run."""
        for node in self.nodes.values():
            if node.state == State.PENDING:
                self._finish(
                    node,
                    State.CANCELED,
                    JobStatus.CANCELED,
                    reason="not run: its inputs never became ready",
                )
        for node in reversed(list(self.nodes.values())):
            if node.state == State.RUNNING and node.is_pipeline:
                self._try_finish_pipeline(node)

    def _abort(self, exc: BaseException) -> None:
        """The runner itself is going down: stop processes and record why."""
        self.context.processes.cancel_all()
        with contextlib.suppress(KeelError):
            self._write_finished(force=True)
        if self.gates is not None:
            with contextlib.suppress(KeelError):
                self.gates.cancel_all("the runner stopped")
        status = JobStatus.CANCELED if isinstance(exc, KeyboardInterrupt) else JobStatus.FAILED
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"the runner failed: {exc}"
        for node in self.nodes.values():
            if not node.state.finished:
                with contextlib.suppress(KeelError):
                    set_job_status(self.store, node.job_name, status, reason=reason)

    # -- reuse ----------------------------------------------------------------------------

    def _reuse(self, node: Node) -> bool:
        """Finish ``node`` from an earlier completed run when allowed; records why not otherwise."""
        key, why = cache_key(node.step.component, node.inputs)
        node.cache_key = key
        previous = self.previous.get(node.path)
        if (
            previous is not None
            and previous.status == JobStatus.COMPLETED
            and self._adopt(node, previous.job_id, previous.job_name, key, "(rerun from failed)")
        ):
            return True
        if self.spec.settings.force_rerun:
            node.reuse_note = "not reused: the pipeline sets force_rerun"
            return False
        if node.step.kind == "sweep":
            node.reuse_note = "not reused: a sweep always runs its trials"
            return False
        if not node.step.is_deterministic:
            node.reuse_note = "not reused: the component is not deterministic"
            return False
        if key is None:
            node.reuse_note = f"not reused: no reuse key, {why}"
            return False
        for job_id, job_name in records.reuse_candidates(self.store, key):
            if self._adopt(node, job_id, job_name, key, ""):
                return True
        node.reuse_note = "not reused: no earlier run had the same code, environment and inputs"
        return False

    def _adopt(self, node: Node, job_id: int, job_name: str, key: str | None, suffix: str) -> bool:
        outputs = self._stored_values(node, job_id, job_name)
        if outputs is None:
            return False
        node.outputs = outputs
        note = f"reused from {job_name} {suffix}".strip()
        self._finish(node, State.COMPLETED, JobStatus.COMPLETED, reuse=(job_id, job_name), key=key, note=note)
        return True

    def _stored_values(self, node: Node, job_id: int, job_name: str) -> dict[str, Value] | None:
        """A completed job's outputs as values, or None if they do not match or are gone."""
        stored = records.stored_outputs(self.store, job_id)
        if set(stored) != set(node.step.component.outputs):
            return None
        outputs: dict[str, Value] = {}
        for name, output in stored.items():
            if output.uri is None:
                outputs[name] = Value(
                    type=output.type,
                    literal=output.value,
                    uri=f"azureml://jobs/{job_name}/outputs/{name}",
                )
                continue
            folder = output.uri.split("/", 2)
            if not is_committed(self.workspace.artifacts, "/".join(folder[:2])):
                node.reuse_note = f"not reused: the outputs of {job_name} are gone"
                return None
            local = local_copy(self.workspace.artifacts, "/".join(folder[:2]), self.context.cache / "outputs")
            path = local / folder[2] if len(folder) > 2 else local
            outputs[name] = Value(type=output.type, path=path, uri=output.uri, digest=output.digest)
        return outputs

    def _restore(self) -> None:
        """Resuming a paused pipeline: its step jobs exist, and what finished stays finished."""
        recorded = records.steps_of(self.store, self.root.job_id)
        self.begun.add("")  # the pipeline keeps the time it first started
        for path, node in self.nodes.items():
            if node is self.root:
                continue
            if path not in recorded:
                raise InternalError(f"resuming {self.root.job_name}: step {path!r} has no job record")
            node.job_id, node.job_name, status = recorded[path]
            if status == JobStatus.COMPLETED and node.step.kind in ("approval", "pipeline"):
                self.replayed.add(path)
            elif status == JobStatus.COMPLETED:
                outputs = self._stored_values(node, node.job_id, node.job_name)
                if outputs is None:
                    self._finish(node, State.FAILED, JobStatus.FAILED, reason="its outputs are gone")
                    self._after_failure(node)
                else:
                    node.outputs, node.state = outputs, State.COMPLETED
            elif status in (JobStatus.FAILED, JobStatus.CANCELED):
                node.state = State.FAILED if status == JobStatus.FAILED else State.CANCELED
            elif status != JobStatus.QUEUED:
                self.begun.add(path)

    def _locate_artifacts(self) -> None:
        for node in self.nodes.values():
            if node is not self.root:
                self.locations[node.path] = job_artifact_location(self.experiment, node.job_name)


def _pipeline_outputs(node: Node, kids: list[Node]) -> dict[str, Value]:
    outputs: dict[str, Value] = {}
    for kid in kids:
        for name, binding in kid.step.outputs.items():
            if binding.parent_output is not None and name in kid.outputs:
                outputs[binding.parent_output] = kid.outputs[name]
    return outputs


def _failure_summary(failed: list[str], nodes: dict[str, Node]) -> str:
    first = nodes[failed[0]]
    timed = bool(first.reason and first.reason.startswith(TIMED_OUT))
    what = f"step {failed[0]!r} {first.reason}" if timed else f"step {failed[0]!r} failed: {first.reason}"
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return what + more
