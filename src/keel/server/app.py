"""The HTTP server: health, Prometheus metrics and the MLflow-compatible tracking API.

``create_app`` builds the ASGI app for a workspace (tests drive it in-process);
``serve`` runs it under uvicorn. Every route but ``/health`` needs a workspace API
token from clients beyond loopback (``keel.server.auth``), and the server listens
beyond loopback only once the workspace has a token. ``/api/jobs`` is run-and-wait
for CI systems (``keel.server.api``).
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keel import __version__
from keel.server import metrics as server_metrics
from keel.server.auth import check_can_listen, is_loopback
from keel.workspace import Workspace


def create_app(workspace: Workspace, *, require_token: bool | None = None) -> Starlette:
    """The ASGI app serving ``workspace``; ``require_token`` defaults to keel.yaml's setting."""
    from keel.schedules.routes import routes as schedule_routes
    from keel.server.api import routes as api_routes
    from keel.server.auth import TokenAuth, auth_settings
    from keel.server.mlflow import routes as mlflow_routes
    from keel.tracking.experiments import ensure_default_experiment

    if require_token is None:
        require_token = auth_settings(workspace.config.sections, workspace.config.source).require_token
    ensure_default_experiment(workspace.store)
    routes: list[BaseRoute] = [
        Route("/health", _health, methods=["GET"]),
        Route("/version", _version, methods=["GET"]),
        Route("/metrics", server_metrics.exposition, methods=["GET"]),
        *schedule_routes(workspace),  # before MLflow's /api catch-all
        *api_routes(workspace),
        *mlflow_routes(workspace),
    ]
    middleware = [
        Middleware(server_metrics.RequestMetrics),
        Middleware(TokenAuth, store=workspace.store, require_token=require_token),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.workspace = workspace
    return app


async def _health(_request: Request) -> Response:
    return PlainTextResponse("OK")


async def _version(_request: Request) -> Response:
    return PlainTextResponse(__version__)


def serve(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    require_token: bool | None = None,
    **uvicorn_options: Any,
) -> None:
    """Run the server in the foreground until interrupted, with its housekeeping thread."""
    import uvicorn

    from keel.server.housekeeping import Housekeeping

    check_can_listen(workspace.store, host)
    app = create_app(workspace, require_token=require_token)
    sys.stderr.write(
        f"Keel tracking server on http://{host}:{port}  (workspace {workspace.config.root})\n"
        f"  MLFLOW_TRACKING_URI=http://{host}:{port}\n"
    )
    if not is_loopback(host):
        sys.stderr.write(
            "  clients beyond loopback must send a workspace API token (MLFLOW_TRACKING_TOKEN);\n"
            "  tokens travel in clear over http: put a TLS-terminating proxy in front on open networks\n"
        )
    housekeeping = Housekeeping(workspace)
    housekeeping.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **uvicorn_options)
    finally:
        housekeeping.stop()
