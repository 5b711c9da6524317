"""Run one command step: a private copy of its code, bound inputs, staged outputs, logs.

The command runs under ``bash -c`` in its code folder, in its own process group
(so cancel and timeouts stop the whole tree), with the Azure and MLflow variables
set. Its output folders are committed to the content store only when it exits 0;
a failed, timed-out or canceled step leaves no outputs behind. ``./outputs`` and
``./logs`` in the working folder are kept as the job's artifacts, as in Azure ML.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from keel.artifacts import ArtifactStore
from keel.jobs.content import DigestCache, commit, local_copy, staging_folder
from keel.jobs.graph import Node, Value
from keel.jobs.snapshot import materialize
from keel.specs.expressions import ExpressionError, Reference, render
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace

LOG_FILE = "user_logs/std_log.txt"
FUNCTION_COMMAND = "python -m keel.function "
TIMED_OUT = "timed out"
_SHELL = shutil.which("bash") or "/bin/sh"
_KILL_GRACE_SECONDS = 5.0


@dataclass
class StepResult:
    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    outputs: dict[str, Value] = field(default_factory=dict)


class Processes:
    """The process groups a run has started, so a cancel can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self.canceled = threading.Event()

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running[process.pid] = process
            if self.canceled.is_set():
                stop_group(process)

    def remove(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._running.pop(process.pid, None)

    def cancel_all(self) -> None:
        self.canceled.set()
        with self._lock:
            running = list(self._running.values())
        for process in running:
            stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def finish() -> None:
        try:
            process.wait(_KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    threading.Thread(target=finish, daemon=True).start()


@dataclass
class RunContext:
    """What every step of one run shares."""

    workspace: Workspace
    artifacts: ArtifactStore
    digests: DigestCache
    scratch: Path
    cache: Path
    tracking_uri: Callable[[], str]
    experiment_id: int
    processes: Processes = field(default_factory=Processes)
    # Told each step process's pid, so the job record can name it (see leftovers.py).
    on_process: Callable[[Node, int], None] = lambda node, pid: None


def job_artifacts(context: RunContext, location: str) -> tuple[ArtifactStore, str]:
    """The store and prefix a job's artifacts live under (its experiment may name its own root)."""
    if "://" in location:
        return ArtifactStore(location), ""
    return context.artifacts, location


def _under(prefix: str, relative: str) -> str:
    return f"{prefix}/{relative}" if prefix else relative


def run_command(context: RunContext, node: Node, artifact_location: str) -> StepResult:
    """Run a command step once per allowed attempt; commit outputs if it succeeds."""
    step = node.step
    run_dir = context.scratch / node.job_name
    attempts = step.retry.count + 1
    log_path, upload_log = _log_file(context, artifact_location, run_dir)
    try:
        with open(log_path, "ab", buffering=0) as log:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    banner = f"attempt {attempt} of {attempts} (retry after {step.retry.delay:g} s)"
                    log.write(f"\n--- {banner} ---\n".encode())
                    time.sleep(step.retry.delay)
                result = _attempt(context, node, run_dir, log, artifact_location)
                if (
                    result.status in (JobStatus.COMPLETED, JobStatus.CANCELED)
                    or context.processes.canceled.is_set()
                ):
                    break
        return result
    finally:
        if upload_log:
            store, prefix = job_artifacts(context, artifact_location)
            store.put_file(log_path, _under(prefix, LOG_FILE))
        shutil.rmtree(run_dir, ignore_errors=True)


def _log_file(context: RunContext, artifact_location: str, run_dir: Path) -> tuple[Path, bool]:
    """Write the log where `keel job stream` reads it: in the artifacts when they are local."""
    if context.artifacts.is_local and "://" not in artifact_location:
        path = context.artifacts.local_path(f"{artifact_location}/{LOG_FILE}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, False
    path = run_dir.parent / f"{run_dir.name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, True


def _attempt(
    context: RunContext, node: Node, run_dir: Path, log: IO[bytes], artifact_location: str
) -> StepResult:
    step = node.step
    shutil.rmtree(run_dir, ignore_errors=True)
    code_dir = run_dir / "code"
    if step.component.code_digest:
        materialize(step.component.code_digest, context.artifacts, code_dir, context.cache)
    code_dir.mkdir(parents=True, exist_ok=True)
    staged = {
        name: staging_folder(context.artifacts, context.scratch / ".staging")
        for name in step.component.outputs
    }
    try:
        command = _render(node, staged)
    except ExpressionError as exc:
        _discard(staged)
        return StepResult(JobStatus.FAILED, reason=f"cannot build the command: {exc}")
    log.write(f"$ {command}\n".encode())
    exit_code, stopped = _execute(context, node, command, code_dir, log)
    if stopped is not None or exit_code != 0:
        _discard(staged)
        return _failure(context, node, exit_code, stopped)
    try:
        outputs = commit_outputs(context, node, staged)
    except (OSError, ValueError) as exc:
        _discard(staged)
        return StepResult(JobStatus.FAILED, reason=f"could not commit outputs: {exc}", exit_code=0)
    _keep_azure_folders(context, code_dir, artifact_location)
    return StepResult(JobStatus.COMPLETED, exit_code=0, outputs=outputs)


def _failure(context: RunContext, node: Node, exit_code: int | None, stopped: str | None) -> StepResult:
    if stopped == "canceled":
        return StepResult(JobStatus.CANCELED, reason="canceled", exit_code=exit_code)
    if stopped == TIMED_OUT:
        limit = node.step.timeout or 0
        return StepResult(JobStatus.FAILED, reason=f"{TIMED_OUT} after {limit:g} s", exit_code=exit_code)
    return StepResult(
        JobStatus.FAILED,
        reason=f"the command exited with code {exit_code}; its log: keel job stream {node.job_name}",
        exit_code=exit_code,
    )


def _render(node: Node, staged: dict[str, Path]) -> str:
    outputs = node.step.component.outputs
    # Keel's own command form parses its arguments itself: quote every value for it.
    quote_literals = (node.step.component.command or "").startswith(FUNCTION_COMMAND)

    def resolve(reference: Reference) -> str | None:
        if reference.context == "inputs":
            value = node.inputs.get(reference.name)
            if value is None:
                return None
            return shlex.quote(value.as_argument()) if quote_literals else _shell_word(value)
        if reference.context == "outputs":
            return shlex.quote(
                str(output_path(staged[reference.name], reference.name, outputs[reference.name].type))
            )
        if reference.context == "name":
            return node.job_name
        return None

    return render(node.step.component.command or "", resolve)


def _shell_word(value: Value) -> str:
    """Paths are quoted (a workspace may live in a folder with spaces); literals are not, as in Azure."""
    return shlex.quote(str(value.path)) if value.path is not None else value.as_argument()


def output_path(staged: Path, name: str, kind: str) -> Path:
    """Where a command writes output ``name``: the folder itself, or a file inside it."""
    if kind == "uri_file":
        return staged / name
    if kind in ("string", "integer", "number", "boolean"):
        return staged / "value"
    return staged


def _environment(context: RunContext, node: Node, code_dir: Path) -> dict[str, str]:
    config = context.workspace.config
    variables = dict(os.environ)
    variables.update(node.step.component.environment_variables)
    variables.update(
        {
            "MLFLOW_TRACKING_URI": context.tracking_uri(),
            "MLFLOW_RUN_ID": node.job_name,
            "MLFLOW_EXPERIMENT_ID": str(context.experiment_id),
            "KEEL_JOB_NAME": node.job_name,
            "KEEL_WORKSPACE": str(config.root),
            "KEEL_DATABASE_URL": config.database_url,
            "KEEL_ARTIFACTS_URL": config.artifacts_url,
            "AZUREML_RUN_ID": node.job_name,
            "AZUREML_CR_EXECUTION_WORKING_DIR_PATH": str(code_dir),
            "PYTHONUNBUFFERED": "1",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), variables.get("PATH", "")]),
        }
    )
    return variables


def _execute(
    context: RunContext, node: Node, command: str, code_dir: Path, log: IO[bytes]
) -> tuple[int | None, str | None]:
    """Run to completion; returns (exit code, why it was stopped or None)."""
    if context.processes.canceled.is_set():
        return None, "canceled"
    process = subprocess.Popen(
        [_SHELL, "-c", command],
        cwd=code_dir,
        env=_environment(context, node, code_dir),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    context.processes.add(process)
    context.on_process(node, process.pid)
    try:
        exit_code = process.wait(timeout=node.step.timeout)
    except subprocess.TimeoutExpired:
        stop_group(process)
        process.wait()
        return process.returncode, TIMED_OUT
    finally:
        context.processes.remove(process)
    if context.processes.canceled.is_set():
        return exit_code, "canceled"
    return exit_code, None


def commit_outputs(
    context: RunContext, node: Node, staged: dict[str, Path], *, literals: dict[str, Any] | None = None
) -> dict[str, Value]:
    """Commit staged data outputs by content; literal outputs come from ``literals`` (an
    in-process call's return) or from the file the command wrote the value to."""
    outputs: dict[str, Value] = {}
    for name, decl in node.step.component.outputs.items():
        if decl.is_literal and literals is not None:
            if name not in literals:
                raise ValueError(f"literal output {name!r} was not returned")
            outputs[name] = Value(type=decl.type, literal=literals[name])
    for name, folder in staged.items():
        decl = node.step.component.outputs[name]
        if decl.is_literal:
            outputs[name] = Value(type=decl.type, literal=read_literal(folder / "value", decl.type, name))
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if decl.type == "uri_file" and not (folder / name).is_file():
            raise ValueError(f"output {name!r} is a uri_file, but the command wrote no file at its path")
        digest = context.digests.digest(folder)
        relative = commit(context.artifacts, folder, digest)
        local = local_copy(context.artifacts, relative, context.cache / "outputs")
        uri = f"{relative}/{name}" if decl.type == "uri_file" else relative
        path = local / name if decl.type == "uri_file" else local
        outputs[name] = Value(type=decl.type, path=path, uri=uri, digest=digest)
    return outputs


def read_literal(path: Path, kind: str, name: str) -> Any:
    """A literal output written by a command: JSON, or plain text for strings."""
    if not path.is_file():
        raise ValueError(f"literal output {name!r} was not written (expected a value in {path})")
    text = path.read_text().strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    checks = {"integer": int, "number": (int, float), "boolean": bool, "string": str}
    if kind == "string":
        return str(value)
    if (isinstance(value, bool) and kind != "boolean") or not isinstance(value, checks[kind]):  # type: ignore[arg-type]
        raise ValueError(f"literal output {name!r} should be a {kind}, got {text!r:.60}")
    return value


def _keep_azure_folders(context: RunContext, code_dir: Path, artifact_location: str) -> None:
    store, prefix = job_artifacts(context, artifact_location)
    for folder in ("outputs", "logs"):
        source = code_dir / folder
        if source.is_dir() and any(source.iterdir()):
            store.put_folder(source, _under(prefix, folder))


def _discard(staged: dict[str, Path]) -> None:
    for folder in staged.values():
        shutil.rmtree(folder, ignore_errors=True)
