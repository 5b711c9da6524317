"""The MLflow tracking REST API, served from Keel's store (placeholder until implemented)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from keel.workspace import Workspace


def routes(workspace: Workspace) -> list[BaseRoute]:
    return []
