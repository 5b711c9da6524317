"""A ``type: data_transfer`` step (Azure's ``task: copy_data``), run by the copy engine.

Every data input is copied into the step's one output: to the output's ``path``
when it names one (a datastore URI, a URL or a local folder), else into a staged
folder committed to the content store like any step output, so the next step
reads it as ``${{inputs.…}}``. The copy runs inside the job the runner made for
the step: its plan, counters, log and manifest are that job's.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from keel.clock import now_ms
from keel.data.copy.options import CopyRequest, Options
from keel.data.copy.plan import save_plan
from keel.data.copy.prepare import prepare
from keel.data.copy.records import REQUEST_PARAM, CopyJob
from keel.data.copy.run import CopyResult, run_attempt
from keel.errors import KeelError
from keel.jobs.command import StepResult, commit_outputs
from keel.jobs.content import staging_folder
from keel.jobs.graph import Node, Value
from keel.tracking.entities import JobStatus

_READ_IN_PLACE = re.compile(r"^(azureml://datastores/|[a-zA-Z][a-zA-Z0-9+.\-]*://)")


def run_copy_step(runner: Any, node: Node) -> StepResult:
    """Copy the step's inputs to its output; the output is committed only if every file made it."""
    ((name, binding),) = node.step.outputs.items()
    decl = binding.decl
    staged = (
        None if decl.path else staging_folder(runner.context.artifacts, runner.context.scratch / ".staging")
    )
    try:
        result = _copy(runner, node, name, path=decl.path, kind=decl.type, staged=staged)
        if not result.ok:
            return StepResult(
                JobStatus.FAILED if result.status != JobStatus.CANCELED else result.status,
                reason=result.reason,
            )
        if staged is not None:
            outputs = commit_outputs(runner.context, node, {name: staged})
            staged = None
        else:
            outputs = {name: _output(runner, result, decl.type)}
        return StepResult(JobStatus.COMPLETED, outputs=outputs)
    except KeelError as exc:
        return StepResult(JobStatus.FAILED, reason=str(exc))
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)


def _copy(
    runner: Any, node: Node, name: str, *, path: str | None, kind: str, staged: Path | None
) -> CopyResult:
    from keel.tracking.jobs import log_params

    options = Options.from_step(node.step.component.options or {})
    sources = tuple(_source(value) for value in node.inputs.values() if value is not None and value.is_data)
    if staged is not None:
        destination = str(staged / name) if kind == "uri_file" else str(staged)
    else:
        destination = path or ""
    request = CopyRequest(sources, destination, options)
    workspace = runner.workspace
    prepared = prepare(workspace, request)
    job = CopyJob(node.job_id, node.job_name, runner.locations[node.path], 0, now_ms())
    log_params(
        workspace.store,
        job.id,
        {"mode": options.mode, "verify": options.verify, REQUEST_PARAM: prepared.request.to_json()},
    )
    save_plan(workspace.store, job.id, prepared.items)
    return run_attempt(workspace, job, prepared, prepared.items, cancel=runner.context.processes.canceled)


def _source(value: Value) -> str:
    """Read datastore and URL inputs where they are; anything else from its local path."""
    if value.uri and _READ_IN_PLACE.match(value.uri) and not value.uri.startswith("azureml://jobs/"):
        return value.uri
    return str(value.path)


def _output(runner: Any, result: CopyResult, kind: str) -> Value:
    """The output as the next step sees it: a local path (fetched once if the copy went remote)."""
    from keel.data.copy.listing import store_kind

    prepared = result.prepared
    root = prepared.destination
    digest = result.digest
    if store_kind(root.fs) == "local":
        local = Path(root.path)
    else:
        local = runner.context.cache / "copies" / (digest or "none").split(":")[-1]
        if not local.exists():
            root.fs.get(root.path.rstrip("/") + "/", str(local) + "/", recursive=True)
    if kind == "uri_file" and prepared.items:
        local = local / prepared.items[0].path
    return Value(type=kind, path=local, uri=root.uri, digest=digest)
