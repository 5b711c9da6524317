"""``keel server``: the MLflow-compatible tracking API and run-and-wait over this workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import open_workspace


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", help="Interface to bind; beyond loopback only once a token exists."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535)] = 5000,
    require_token: Annotated[
        bool,
        typer.Option("--require-token", help="Ask loopback clients for a token too (behind a proxy)."),
    ] = False,
) -> None:
    """Serve the MLflow tracking REST API (and artifact proxy) and /api/jobs for this workspace.

    Point MLflow at it with MLFLOW_TRACKING_URI=http://127.0.0.1:5000. Clients beyond
    loopback send a workspace API token (MLFLOW_TRACKING_TOKEN; see `keel token create`).
    """
    from keel.server.app import serve as run_server

    run_server(open_workspace(ctx), host=host, port=port, require_token=require_token or None)
