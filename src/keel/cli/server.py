"""``keel server``: the MLflow-compatible tracking API over this workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import open_workspace


def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; loopback only for now.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535)] = 5000,
) -> None:
    """Serve the MLflow tracking REST API (and artifact proxy) backed by this workspace.

    Point MLflow at it with MLFLOW_TRACKING_URI=http://127.0.0.1:5000.
    """
    from keel.server.app import serve as run_server

    run_server(open_workspace(ctx), host=host, port=port)
