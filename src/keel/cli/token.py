"""``keel token``: workspace API tokens for ``keel server`` and ``keel up``."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

app = typer.Typer(help="API tokens: what HTTP clients beyond loopback must send.", no_args_is_help=True)
NameArgument = Annotated[str, typer.Argument(help="The token's name, e.g. ci-github.")]


@app.command("create")
def create(ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.table) -> None:
    """Create a token; it is shown this once (only a hash of it is kept)."""
    from keel.approvals import os_user
    from keel.server.tokens import create_token

    token, text = create_token(open_workspace(ctx).store, name, created_by=os_user())
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json({**token.to_dict(), "token": text})
        return
    typer.echo(f"token {name} created; it will not be shown again:")
    typer.echo(f"  {text}")
    typer.echo("  send it as: Authorization: Bearer <token>   (MLflow: MLFLOW_TRACKING_TOKEN=<token>)")


@app.command("list")
def list_tokens(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List tokens: names, when created and last used (never the tokens)."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.server.tokens import list_tokens as stored_tokens

    found = stored_tokens(open_workspace(ctx).store)
    if output == OutputFormat.json:
        print_json([token.to_dict() for token in found])
        return
    rows = [
        (
            t.name,
            t.prefix + "…",
            t.created_by,
            format_time(t.created_at),
            format_time(t.last_used_at) or "never",
        )
        for t in found
    ]
    print_table(("Name", "Starts with", "Created by", "Created", "Last used"), rows, empty="no tokens yet")


@app.command("revoke")
def revoke(ctx: typer.Context, name: NameArgument) -> None:
    """Revoke a token; servers refuse it within a second."""
    from keel.server.tokens import revoke_token

    revoke_token(open_workspace(ctx).store, name)
    typer.echo(f"token {name} revoked")
