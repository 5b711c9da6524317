"""The fast path: a Python component step called in the runner's own process.

A step whose command is exactly the portable form a ``@keel.component`` declares
(``python -m keel.function module:function …``), and whose function was defined
in this process, is called directly: no interpreter start, no argument parsing.
Its data outputs are staged and committed exactly as a command's are, its literal
outputs are its return values, and ``keel.log_metric`` inside it lands on the
step. Steps with a timeout still run as processes (only a process can be stopped).
"""

from __future__ import annotations

import traceback

from keel.jobs.command import RunContext, StepResult, _discard, commit_outputs, output_path
from keel.jobs.content import staging_folder
from keel.jobs.graph import Node
from keel.tracking.entities import JobStatus


def in_process_target(node: Node) -> str | None:
    """The function to call for ``node``, or None when it must run as a process."""
    if node.step.kind != "command" or node.step.timeout is not None:
        return None
    from keel.jobs.python_call import function_target
    from keel.jobs.python_component import registered

    target = function_target(node.step.component)
    return target if target is not None and registered(target) is not None else None


def run_in_process(context: RunContext, node: Node, target: str, artifact_location: str) -> StepResult:
    from keel.jobs.python_call import call_function
    from keel.tracking.sdk import logging_into

    outputs = node.step.component.outputs
    staged = {
        name: staging_folder(context.artifacts, context.scratch / ".staging")
        for name, decl in outputs.items()
        if not decl.is_literal
    }
    arguments: dict[str, object] = {
        name: str(value.path) if value.path is not None else value.literal
        for name, value in node.inputs.items()
        if value is not None
    }
    arguments.update(
        {name: str(output_path(folder, name, outputs[name].type)) for name, folder in staged.items()}
    )
    try:
        with logging_into(
            context.workspace,
            job_id=node.job_id,
            name=node.job_name,
            experiment_id=context.experiment_id,
            artifact_location=artifact_location,
        ):
            returned = call_function(target, arguments)
    except Exception as exc:
        _discard(staged)
        _log_traceback(context, artifact_location)
        return StepResult(JobStatus.FAILED, reason=f"{target} raised {type(exc).__name__}: {exc}"[:2000])
    try:
        committed = commit_outputs(context, node, staged, literals=returned)
    except (OSError, ValueError) as exc:
        _discard(staged)
        return StepResult(JobStatus.FAILED, reason=f"could not commit outputs: {exc}")
    return StepResult(JobStatus.COMPLETED, outputs=committed)


def _log_traceback(context: RunContext, artifact_location: str) -> None:
    from keel.jobs.command import LOG_FILE, job_artifacts

    store, prefix = job_artifacts(context, artifact_location)
    store.write_bytes(f"{prefix}/{LOG_FILE}" if prefix else LOG_FILE, traceback.format_exc().encode())
