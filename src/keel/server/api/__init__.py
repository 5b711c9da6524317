"""Keel's own HTTP API (beside the MLflow-compatible one): run a job and wait for it.

    POST /api/jobs                   submit a job (YAML text, or JSON {"spec": …}); 201
    GET  /api/jobs/{name}?wait=60    the job; with ``wait``, answers when it ends or
                                     after that many seconds, whichever comes first

Errors are :func:`keel.errors.error_body` with the error's HTTP status.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from keel.server.api import jobs
from keel.workspace import Workspace


def routes(workspace: Workspace) -> list[BaseRoute]:
    return [
        Route("/api/jobs", jobs.create_endpoint(workspace), methods=["POST"]),
        Route("/api/jobs/{name}", jobs.show_endpoint(workspace), methods=["GET"]),
    ]
