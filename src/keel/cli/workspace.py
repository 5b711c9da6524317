"""``keel init`` and ``keel quickstart``: make a workspace, and show what Keel does."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import open_workspace


def init(ctx: typer.Context) -> None:
    """Create the workspace (other commands also create it on first use)."""
    workspace = open_workspace(ctx)
    workspace.store  # noqa: B018 - opening the store creates and migrates it
    typer.echo(f"workspace ready at {workspace.config.root}")
    typer.echo(f"  metadata:  {workspace.store.url}")
    typer.echo(f"  artifacts: {workspace.config.artifacts_url}")


def quickstart(
    ctx: typer.Context,
    rows: Annotated[
        int,
        typer.Option("--rows", min=1000, help="How many flights to train on (speed vs. quality)."),
    ] = 60_000,
) -> None:
    """Run the end-to-end demo on the embedded workspace: real data, real runs, a comparison."""
    from keel.quickstart import run_quickstart

    run_quickstart(open_workspace(ctx), rows=rows)
