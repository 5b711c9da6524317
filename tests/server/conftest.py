"""The MLflow API driven in-process through httpx, over a workspace on each database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.server.app import create_app
from keel.store import Store
from keel.workspace import Workspace, WorkspaceConfig

API = "/api/2.0/mlflow"


class MlflowApi:
    """Calls one MLflow endpoint and checks the status, returning the JSON answer."""

    def __init__(self, client: httpx.AsyncClient, workspace: Workspace) -> None:
        self.client = client
        self.workspace = workspace

    async def post(self, endpoint: str, body: Any = None, *, status: int = 200) -> Any:
        return await self.call("POST", endpoint, json=body if body is not None else {}, status=status)

    async def get(self, endpoint: str, params: Any = None, *, status: int = 200) -> Any:
        return await self.call("GET", endpoint, params=params, status=status)

    async def call(self, method: str, endpoint: str, *, status: int = 200, **options: Any) -> Any:
        response = await self.client.request(method, f"{API}/{endpoint}", **options)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    async def new_run(self, experiment_id: str = "0", **fields: Any) -> str:
        answer = await self.post("runs/create", {"experiment_id": experiment_id, **fields})
        run_id: str = answer["run"]["info"]["run_id"]
        return run_id


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Workspace:
    """A workspace over the ``store`` fixture's database (SQLite, then PostgreSQL)."""
    config = WorkspaceConfig(
        root=tmp_path / ".keel",
        database_url=store.engine.url.render_as_string(hide_password=False),
        artifacts_url=(tmp_path / "artifacts").as_uri(),
    )
    return Workspace(config, _store=store)


async def _client(workspace: Workspace) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(workspace))
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        yield client


@pytest.fixture
async def api(served: Workspace) -> AsyncIterator[MlflowApi]:
    """The MLflow API over ``served``; runs on both databases."""
    async for client in _client(served):
        yield MlflowApi(client, served)


@pytest.fixture
async def local_api(workspace: Workspace) -> AsyncIterator[MlflowApi]:
    """The MLflow API over an embedded workspace, for tests the database does not affect."""
    async for client in _client(workspace):
        yield MlflowApi(client, workspace)
