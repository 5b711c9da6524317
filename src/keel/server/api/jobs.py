"""``POST /api/jobs`` and ``GET /api/jobs/{name}?wait=N``: run-and-wait for CI systems.

A submitted spec names no files on the server: code, component files and local
data paths are refused with a 400 naming the field (see ``keel.specs.load_sent_job``);
components and data are registered first and referred to as ``azureml:`` references.
Reading a job long-polls: the answer comes when the job ends or ``wait`` seconds
pass, whichever is first, so a CI step is ``POST`` then ``GET …?wait=60`` in a loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from keel.errors import InvalidInput, KeelError, error_body
from keel.tracking.entities import Job
from keel.workspace import Workspace

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_BODY_BYTES = 1024 * 1024
MAX_WAIT_SECONDS = 600.0
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
_OPTIONS = ("name", "experiment_name", "display_name")


class PayloadTooLarge(KeelError):
    """Raised when a request body is over the limit."""

    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(KeelError):
    """Raised when a body's content type is neither JSON nor YAML."""

    code = "unsupported_media_type"
    http_status = 415


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _answering_errors(handler: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except KeelError as error:
            return _json(error_body(error), error.http_status)

    return endpoint


def create_endpoint(workspace: Workspace) -> Endpoint:
    async def create(request: Request) -> Response:
        document, options = await _submission(request)
        submitter = request.scope.get("state", {}).get("token_name")
        job, notices = await run_in_threadpool(_submit, workspace, document, options, submitter)
        location = f"/api/jobs/{job.name}"
        body = {"name": job.name, "status": job.status.value, "url": location, "notices": notices}
        return _json(body, 201, {"Location": location})

    return _answering_errors(create)


def show_endpoint(workspace: Workspace) -> Endpoint:
    async def show(request: Request) -> Response:
        name = request.path_params["name"]
        deadline = time.monotonic() + _wait_seconds(request.query_params.get("wait"))
        delay = 0.05
        while True:
            job = await run_in_threadpool(_look, workspace, name)
            left = deadline - time.monotonic()
            if job.status.is_terminal or left <= 0 or await request.is_disconnected():
                break
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)
        return _json(await run_in_threadpool(_describe, workspace, job))

    return _answering_errors(show)


async def _submission(request: Request) -> tuple[str | dict[str, Any], dict[str, str]]:
    """The spec (YAML text or a mapping) and the options (name, experiment_name, display_name)."""
    body = await _limited_body(request)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return _json_submission(body)
    if kind in _YAML_TYPES:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the YAML body is not UTF-8") from None
        return text, _options(dict(request.query_params), "query parameter")
    raise UnsupportedMediaType(
        f"cannot read a body of type {kind or 'nothing'!r}",
        hint='send application/json ({"spec": …}) or application/yaml (the job file)',
    )


async def _limited_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_submission(body: bytes) -> tuple[str | dict[str, Any], dict[str, str]]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or "spec" not in document:
        raise InvalidInput('expected a JSON object {"spec": <the job, as a mapping or YAML text>}')
    spec = document.pop("spec")
    if not isinstance(spec, dict | str):
        raise InvalidInput("spec: expected the job as a mapping or as YAML text")
    return spec, _options(document, "field")


def _options(given: dict[str, Any], what: str) -> dict[str, str]:
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise InvalidInput(f"unknown {what} {unknown[0]!r}", hint=f"expected spec, {', '.join(_OPTIONS)}")
    for key, value in given.items():
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{key}: expected a non-empty string")
    return dict(given)


def _wait_seconds(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidInput(f"wait: expected a number of seconds, got {text!r}") from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise InvalidInput(f"wait: expected 0 to {MAX_WAIT_SECONDS:g} seconds, got {text}")
    return seconds


def _submit(
    workspace: Workspace, document: str | dict[str, Any], options: dict[str, str], submitter: str | None
) -> tuple[Job, list[str]]:
    from keel.jobs import components
    from keel.jobs.submit import start_in_background, submit
    from keel.specs import load_sent_job
    from keel.tracking.jobs import set_tags

    spec = load_sent_job(document, name="request", lookup_component=components.lookup(workspace))
    job = submit(
        workspace,
        spec,
        name=options.get("name"),
        experiment_name=options.get("experiment_name") or spec.experiment_name or "Default",
        display_name=options.get("display_name"),
    )
    set_tags(
        workspace.store, job.id, {"keel.submitted_by": f"token {submitter}" if submitter else "loopback"}
    )
    start_in_background(workspace, job.name)
    return job, spec.notices


def _look(workspace: Workspace, name: str) -> Job:
    from keel.tracking.jobs import get_job, reap_dead_jobs

    reap_dead_jobs(workspace.store, timeout_seconds=workspace.config.heartbeat_timeout_seconds)
    return get_job(workspace.store, name)


def _describe(workspace: Workspace, job: Job) -> dict[str, Any]:
    from keel.approvals import PENDING, list_approvals
    from keel.jobs.outcome import exit_code_for
    from keel.tracking.search import search_jobs

    body = job.to_dict()
    body["terminal"] = job.status.is_terminal
    body["exit_code"] = exit_code_for(job) if job.status.is_terminal else None
    steps = search_jobs(workspace.store, parent_id=job.id, max_results=1000).jobs
    body["steps"] = [
        {"name": s.name, "step": s.step_name, "status": s.status.value, "status_reason": s.status_reason}
        for s in sorted(steps, key=lambda step: step.id)
    ]
    body["approvals"] = [
        a.to_dict() for a in list_approvals(workspace.store, status=PENDING, pipeline=job.name)
    ]
    return body
