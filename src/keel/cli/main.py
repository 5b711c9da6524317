"""The ``keel`` command: one Typer sub-app per noun, mirroring ``az ml``.

Modules here import only Typer at the top; each command imports the domain code
it needs when it runs, so ``keel --help`` does not pay for SQLAlchemy.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from typing import Annotated

import typer

from keel.cli.context import WorkspaceOption

# Noun -> module in keel.cli whose ``app`` holds its commands; the order is the help's.
_NOUNS = {
    "job": "job",
    "experiment": "experiment",
    "component": "component",
    "datastore": "datastore",
    "data": "data_copy",  # keel.cli.data's app, with `keel data copy` and `keel data verify` added
    "model": "model",
    "batch-endpoint": "batch_endpoint",
    "batch-deployment": "batch_deployment",
    "online-endpoint": "online_endpoint",
    "online-deployment": "online_deployment",
    "schedule": "schedule",
    "approval": "approval",
    "token": "token",
    "webhook": "webhook",
}
# Top-level command -> (module in keel.cli, function, help override).
_COMMANDS = {
    "init": ("workspace", "init", None),
    "up": ("up", "up", None),
    "serve": ("up", "up", "Same as `keel up`."),
    "server": ("server", "serve", None),
    "scheduler": ("scheduler", "scheduler", None),
    "quickstart": ("workspace", "quickstart", None),
}
_ROOT_OPTIONS_WITH_VALUE = ("--workspace", "-w")


def build_app(only: str | None = None) -> typer.Typer:
    """The ``keel`` app; with ``only``, just that noun or command under the root options.

    Typer inspects every command's signature when the app runs (about a tenth of a
    second for all of them), so a command line that names its noun builds that one.
    """
    app = typer.Typer(
        name="keel",
        help="Keel: a local-first machine-learning platform (tracking, jobs, data, models, endpoints).",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name, module in _NOUNS.items():
        if only in (None, name):
            app.add_typer(importlib.import_module(f"keel.cli.{module}").app, name=name)
    for name, (module, function, help_text) in _COMMANDS.items():
        if only in (None, name):
            command = getattr(importlib.import_module(f"keel.cli.{module}"), function)
            app.command(name, help=help_text)(command)
    return app


@cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app, for the CLI reference and tests
        return _full_app()
    raise AttributeError(name)


def requested(argv: list[str]) -> str | None:
    """The noun or command a command line names, or None (help, version, a typo)."""
    tokens = iter(argv)
    for token in tokens:
        if token in _ROOT_OPTIONS_WITH_VALUE:
            next(tokens, None)
        elif token.startswith("--workspace="):
            continue
        elif token.startswith("-"):
            return None
        else:
            return token if token in _NOUNS or token in _COMMANDS else None
    return None


def _version(value: bool) -> None:
    if value:
        from keel import __version__

        typer.echo(f"keel {__version__}")
        raise typer.Exit()


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
        build_app(requested(sys.argv[1:]))()
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
