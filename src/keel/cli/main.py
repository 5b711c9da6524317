"""The ``keel`` command: one Typer sub-app per noun, mirroring ``az ml``.

Modules here import only Typer at the top; each command imports the domain code
it needs when it runs, so ``keel --help`` does not pay for SQLAlchemy.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from keel.cli import (
    approval,
    batch_deployment,
    batch_endpoint,
    component,
    data,
    data_copy,  # noqa: F401  (registers its commands on data.app)
    datastore,
    experiment,
    job,
    model,
    online_deployment,
    online_endpoint,
    schedule,
    scheduler,
    server,
    token,
    up,
    webhook,
    workspace,
)
from keel.cli.context import WorkspaceOption

app = typer.Typer(
    name="keel",
    help="Keel: a local-first machine-learning platform (tracking, jobs, data, models, endpoints).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(job.app, name="job")
app.add_typer(experiment.app, name="experiment")
app.add_typer(component.app, name="component")
app.add_typer(datastore.app, name="datastore")
app.add_typer(data.app, name="data")  # data_copy adds `keel data copy` and `keel data verify` to it
app.add_typer(model.app, name="model")
app.add_typer(batch_endpoint.app, name="batch-endpoint")
app.add_typer(batch_deployment.app, name="batch-deployment")
app.add_typer(online_endpoint.app, name="online-endpoint")
app.add_typer(online_deployment.app, name="online-deployment")
app.add_typer(schedule.app, name="schedule")
app.add_typer(approval.app, name="approval")
app.add_typer(token.app, name="token")
app.add_typer(webhook.app, name="webhook")
app.command("init")(workspace.init)
app.command("up")(up.up)
app.command("serve", help="Same as `keel up`.")(up.up)
app.command("server")(server.serve)
app.command("scheduler")(scheduler.scheduler)
app.command("quickstart")(workspace.quickstart)


def _version(value: bool) -> None:
    if value:
        from keel import __version__

        typer.echo(f"keel {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace_path: WorkspaceOption = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Keel: experiment tracking, jobs and pipelines, data, models and endpoints, locally."""
    ctx.obj = {"workspace": workspace_path}


def main() -> None:
    """Entry point: run the app; Keel errors become one line on stderr and exit code 1."""
    from keel.errors import KeelError

    try:
        app()
    except KeelError as error:
        _fail(f"error: {error}")
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as error:  # a bug: say so in one line unless asked for the traceback
        if os.environ.get("KEEL_DEBUG"):
            raise
        _fail(
            f"internal error: {type(error).__name__}: {error} "
            "(set KEEL_DEBUG=1 to see the traceback, and please report it)"
        )


def _fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
