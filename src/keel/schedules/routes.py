"""The HTTP route event schedules listen on: ``POST /api/schedules/{name}/events``.

The server mounts :func:`routes`; the work is :func:`keel.schedules.events.receive_events`,
run in a thread (it writes to the store and starts runner processes).
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keel.errors import InvalidInput, KeelError, error_body
from keel.schedules.events import MAX_BODY_BYTES, receive_events
from keel.schedules.launch import default_runner_limit
from keel.workspace import Workspace


def routes(workspace: Workspace) -> list[BaseRoute]:
    """The event route, for the app serving ``workspace``."""

    async def events(request: Request) -> Response:
        try:
            body = await _body(request)
            result = await run_in_threadpool(
                receive_events,
                workspace,
                request.path_params["name"],
                body,
                dict(request.headers),
                runner_limit=default_runner_limit(),
            )
        except KeelError as error:
            return _json(error_body(error), error.http_status)
        fired_now = any(not item["duplicate"] for item in result["fired"])
        return _json(result, 202 if fired_now else 200)

    return [Route("/api/schedules/{name}/events", events, methods=["POST"])]


async def _body(request: Request) -> bytes:
    """The body, refused past the limit before it is all read."""
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY_BYTES:
            raise InvalidInput(f"the event body is over {MAX_BODY_BYTES} bytes")
    return bytes(chunks)


def _json(body: object, status: int) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
