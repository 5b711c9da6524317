"""The HTTP server: health, Prometheus metrics and the MLflow-compatible tracking API.

``create_app`` builds the ASGI app for a workspace (tests drive it in-process);
``serve`` runs it under uvicorn. Nothing listens beyond loopback until Keel has
authentication for it.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keel import __version__
from keel.errors import InvalidInput
from keel.server import metrics as server_metrics
from keel.workspace import Workspace


def create_app(workspace: Workspace) -> Starlette:
    """The ASGI app serving ``workspace``."""
    from keel.server.mlflow import routes as mlflow_routes
    from keel.tracking.experiments import ensure_default_experiment

    ensure_default_experiment(workspace.store)
    routes: list[BaseRoute] = [
        Route("/health", _health, methods=["GET"]),
        Route("/version", _version, methods=["GET"]),
        Route("/metrics", server_metrics.exposition, methods=["GET"]),
        *mlflow_routes(workspace),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(server_metrics.RequestMetrics)])
    app.state.workspace = workspace
    return app


async def _health(_request: Request) -> Response:
    return PlainTextResponse("OK")


async def _version(_request: Request) -> Response:
    return PlainTextResponse(__version__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def serve(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 5000, **uvicorn_options: Any) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    if not is_loopback(host):
        raise InvalidInput(
            f"refusing to listen on {host}: Keel serves only loopback until it has authentication",
            hint="bind 127.0.0.1, or put an authenticating reverse proxy in front",
        )
    app = create_app(workspace)
    sys.stderr.write(
        f"Keel tracking server on http://{host}:{port}  (workspace {workspace.config.root})\n"
        f"  MLFLOW_TRACKING_URI=http://{host}:{port}\n"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **uvicorn_options)
