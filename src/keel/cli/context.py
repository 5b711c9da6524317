"""Options every command shares, and how a command finds its workspace."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from keel.workspace import Workspace


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar="KEEL_WORKSPACE",
        help="Workspace folder (default: keel.yaml's, else ./.keel).",
        show_envvar=True,
    ),
]
OutputOption = Annotated[
    OutputFormat,
    typer.Option("--output", "-o", help="Output format.", case_sensitive=False),
]


def open_workspace(ctx: typer.Context) -> Workspace:
    """The workspace named on the command line, in the environment, or found from here."""
    from keel.workspace import Workspace

    root = ctx.find_root()
    path = (root.obj or {}).get("workspace") if root is not None else None
    return Workspace.open(path)
