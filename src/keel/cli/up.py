"""``keel up`` (also ``keel serve``): the workspace's one long-running host — endpoints, API, scheduler."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import open_workspace


def up(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="0 picks a free port.")] = 8080,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Accept requests without credentials (loopback only; for local trials)."
        ),
    ] = False,
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token",
            help="Ask loopback clients of /api/... for a workspace token too (behind a proxy).",
        ),
    ] = False,
    no_scheduler: Annotated[
        bool,
        typer.Option("--no-scheduler", help="Do not run schedules here (a `keel scheduler` runs them)."),
    ] = False,
) -> None:
    """Serve every online endpoint of this workspace, run its schedules, and serve /api/jobs and events.

    Endpoints and deployments live in the store, so they come back when `keel up` restarts.
    Scoring URI: http://HOST:PORT/endpoints/<endpoint>/score; also /invocations and the Open
    Inference Protocol at /v2/models/<endpoint>/infer. On the same port: POST /api/jobs,
    GET /api/jobs/NAME?wait=60 and POST /api/schedules/NAME/events, which clients beyond
    loopback call with a workspace API token (`keel token create`). The scheduler runs
    inside unless --no-scheduler; approval timeouts and webhook deliveries are settled here.
    """
    import sys

    from keel.endpoints.online.host import is_loopback, serve

    def announce(url: str) -> None:
        schedules = "run by a separate `keel scheduler`" if no_scheduler else "run here"
        sys.stderr.write(
            f"Keel gateway on {url}  (workspace {workspace.config.root})\n  schedules: {schedules}\n"
        )
        if not is_loopback(host):
            sys.stderr.write(
                "  /api/... needs a workspace API token beyond loopback; tokens and keys travel in clear\n"
                "  over http: put a TLS-terminating proxy in front on open networks\n"
            )
        sys.stderr.flush()

    workspace = open_workspace(ctx)
    serve(
        workspace,
        host=host,
        port=port,
        require_auth=not no_auth,
        require_token=require_token or None,
        scheduler=not no_scheduler,
        announce=announce,
    )
