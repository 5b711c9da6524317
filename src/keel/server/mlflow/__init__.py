"""The MLflow tracking REST API, served from Keel's store.

With ``MLFLOW_TRACKING_URI`` pointing at ``keel server`` the unmodified ``mlflow``
client logs into Keel: experiments are Keel experiments, runs are Keel jobs, and
files go through the ``mlflow-artifacts`` proxy into the workspace's artifact store.
The API answers under ``/api/2.0/mlflow`` and, as MLflow's own server does, under
``/ajax-api/2.0/mlflow``; anything else under ``/api`` is ``ENDPOINT_NOT_FOUND``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keel.server.mlflow import artifacts, experiments, logged_models, metrics, registry, runs
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import EndpointNotFound, endpoint, error_response
from keel.workspace import Workspace

API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Metric ingest first: routes are matched in order, and it is the busiest.
ENDPOINTS = [
    *metrics.ROUTES,
    *runs.ROUTES,
    *experiments.ROUTES,
    *logged_models.ROUTES,
    *registry.ROUTES,
    *artifacts.ROUTES,
]


def routes(workspace: Workspace) -> list[BaseRoute]:
    """Every MLflow route for ``workspace``, ending with the not-found catch-alls."""
    context = Context(workspace)
    found: list[BaseRoute] = []
    for prefix in API_PREFIXES:
        found += [
            Route(prefix + path, endpoint(handler, context), methods=[method])
            for method, path, handler in ENDPOINTS
        ]
    for prefix in ARTIFACT_PREFIXES:
        found += artifacts.proxy_routes(prefix, context)
    found += [
        Route(f"{prefix}/{{rest:path}}", _not_found, methods=_ANY_METHOD) for prefix in ("/api", "/ajax-api")
    ]
    return found


async def _not_found(request: Request) -> Response:
    return error_response(
        EndpointNotFound(f"Keel has no MLflow endpoint {request.method} {request.url.path}")
    )
