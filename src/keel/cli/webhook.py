"""``keel webhook``: endpoints that receive signed events, and the deliveries made to them."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli.context import OutputFormat, OutputOption, open_workspace

app = typer.Typer(help="Webhooks: signed events on job status changes and approvals.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    url: Annotated[str, typer.Option("--url", help="Where to POST events (http or https).")],
    events: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="An event or pattern, e.g. 'job.*' (repeatable; default all)."),
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            "--secret-env", help="Sign with the secret in this environment variable, read at send time."
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Register an endpoint. Without --secret-env Keel makes a signing secret and shows it once."""
    from keel.webhooks import create_endpoint

    secret = f"${{{secret_env}}}" if secret_env else None
    endpoint, generated = create_endpoint(open_workspace(ctx), name, url, secret=secret, events=events)
    if output == OutputFormat.json:
        from keel.cli.render import print_json

        print_json({**vars(endpoint), "events": list(endpoint.events), "secret": generated})
        return
    typer.echo(f"webhook {name} created: {', '.join(endpoint.events)} → {url}")
    if generated:
        typer.echo(f"  signing secret (shown once): {generated}")


@app.command("list")
def list_webhooks(ctx: typer.Context, output: OutputOption = OutputFormat.table) -> None:
    """List endpoints, from keel.yaml and registered (never their secrets)."""
    from keel.cli.render import print_json, print_table
    from keel.webhooks import list_endpoints

    found = list_endpoints(open_workspace(ctx))
    if output == OutputFormat.json:
        print_json([{**vars(e), "events": list(e.events)} for e in found])
        return
    rows = [(e.name, e.url, ", ".join(e.events), e.source) for e in found]
    print_table(("Name", "URL", "Events", "From"), rows, empty="no webhooks yet")


@app.command("delete")
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A registered endpoint.")]) -> None:
    """Remove a registered endpoint (its pending deliveries then fail)."""
    from keel.webhooks import delete_endpoint

    delete_endpoint(open_workspace(ctx), name)
    typer.echo(f"webhook {name} deleted")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="Only pending, delivered or failed ones.")
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", "-r", min=1, max=10_000)] = 50,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Recent deliveries: their events, attempts and last errors, newest first."""
    from keel.cli.render import format_time, print_json, print_table
    from keel.errors import InvalidInput
    from keel.webhooks import list_deliveries

    if status not in (None, "pending", "delivered", "failed"):
        raise InvalidInput(f"--status is pending, delivered or failed, not {status!r}")
    found = list_deliveries(open_workspace(ctx), limit=max_results, status=status)
    if output == OutputFormat.json:
        print_json([vars(d) for d in found])
        return
    rows = [
        (d.id, d.endpoint, d.event_type, d.status, d.attempts, format_time(d.created_at), d.last_error)
        for d in found
    ]
    columns = ("ID", "Endpoint", "Event", "Status", "Attempts", "Queued", "Last error")
    print_table(columns, rows, empty="no deliveries yet")


@app.command("deliver")
def deliver(
    ctx: typer.Context,
    wait: Annotated[
        float, typer.Option("--wait", min=0, max=3600, help="Keep retrying for up to this many seconds.")
    ] = 0.0,
) -> None:
    """Send the deliveries that are due now (servers do this every second by themselves)."""
    from keel.webhooks import flush

    left = flush(open_workspace(ctx), within_seconds=wait)
    typer.echo(f"{left} deliveries still pending" if left else "nothing pending")
