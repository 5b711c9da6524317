"""The end-to-end demo (being written)."""

from __future__ import annotations

from keel.workspace import Workspace


def run_quickstart(workspace: Workspace, *, rows: int) -> None:
    raise NotImplementedError
