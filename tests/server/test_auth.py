"""Workspace API tokens: stored hashed, required beyond loopback, and what MLflow's client sends.

In-process tests drive the real app with httpx, posing as a client on another
address; real-socket tests run ``keel server`` and reach it over the machine's own
non-loopback address, and with the unmodified ``mlflow`` client.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select
from tests.jobs.conftest import keel_cli

from keel.errors import Conflict, InvalidInput, NotFound
from keel.server.app import create_app
from keel.server.auth import auth_settings, check_can_listen
from keel.server.tokens import check_token, create_token, list_tokens, revoke_token
from keel.store import Store
from keel.store.schema import api_tokens
from keel.workspace import Workspace

ELSEWHERE = ("203.0.113.9", 40000)  # a client that is not on loopback


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _client(workspace: Workspace, *, client: tuple[str, int], **options: bool) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(workspace, **options), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://keel")


@pytest.fixture
async def remote(workspace: Workspace) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(workspace, client=ELSEWHERE) as client:
        yield client


# -- tokens in the store ---------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_only_as_a_hash(store: Store) -> None:
    token, text = create_token(store, "ci-github", created_by="alice")
    assert text.startswith("keel_") and len(text) > 40 and token.prefix == text[:12]
    with store.read() as conn:
        row = conn.execute(select(api_tokens)).one()
    assert text not in str(tuple(row)) and row.token_hash == hashlib.sha256(text.encode()).hexdigest()
    assert check_token(store, text) == "ci-github"
    assert check_token(store, text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    assert check_token(store, "not-a-token") is None
    (listed,) = list_tokens(store)
    assert listed.name == "ci-github" and listed.created_by == "alice" and listed.last_used_at is not None
    with pytest.raises(Conflict, match="a token named 'ci-github' exists"):
        create_token(store, "ci-github")
    with pytest.raises(InvalidInput, match="token name 'a b' is not valid"):
        create_token(store, "a b")
    revoke_token(store, "ci-github")
    assert check_token(store, text) is None and list_tokens(store) == []
    with pytest.raises(NotFound, match="no token named 'ci-github'"):
        revoke_token(store, "ci-github")


# -- the middleware --------------------------------------------------------------------


@pytest.mark.anyio
async def test_clients_beyond_loopback_need_a_token_except_for_health(
    remote: httpx.AsyncClient, workspace: Workspace
) -> None:
    assert (await remote.get("/health")).status_code == 200
    for path in ("/version", "/metrics", "/api/jobs/x", "/api/2.0/mlflow/experiments/search"):
        refused = await remote.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == 'Bearer realm="keel"'
    keel_answer = (await remote.get("/version")).json()
    assert keel_answer["error"]["code"] == "unauthenticated"
    assert keel_answer["error"]["message"] == "a workspace API token is required"
    mlflow_answer = (await remote.get("/api/2.0/mlflow/experiments/search")).json()
    assert mlflow_answer["error_code"] == "UNAUTHENTICATED"
    _, text = create_token(workspace.store, "ci")
    bad = await remote.get("/version", headers={"Authorization": "Bearer keel_wrong"})
    assert bad.status_code == 401 and bad.json()["error"]["message"] == "the API token is not valid"
    good = await remote.get("/version", headers={"Authorization": f"Bearer {text}"})
    assert good.status_code == 200
    basic = await remote.get("/version", headers={"Authorization": f"Basic {text}"})
    assert basic.status_code == 401


@pytest.mark.anyio
async def test_loopback_clients_need_none_unless_the_workspace_asks(workspace: Workspace) -> None:
    async with await _client(workspace, client=("127.0.0.1", 5000)) as local:
        assert (await local.get("/version")).status_code == 200
    async with await _client(workspace, client=("::1", 5000), require_token=True) as strict:
        assert (await strict.get("/version")).status_code == 401
        assert (await strict.get("/health")).status_code == 200
        _, text = create_token(workspace.store, "local")
        assert (await strict.get("/version", headers={"Authorization": f"Bearer {text}"})).status_code == 200
    configured = dataclasses.replace(workspace.config, sections={"server": {"require_token": True}})
    async with await _client(Workspace(configured, _store=workspace.store), client=("127.0.0.1", 1)) as c:
        assert (await c.get("/version")).status_code == 401  # keel.yaml's server.require_token


@pytest.mark.anyio
async def test_a_revoked_token_stops_working(remote: httpx.AsyncClient, workspace: Workspace) -> None:
    _, text = create_token(workspace.store, "leaving")
    headers = {"Authorization": f"Bearer {text}"}
    assert (await remote.get("/version", headers=headers)).status_code == 200
    revoke_token(workspace.store, "leaving")
    time.sleep(1.1)  # valid tokens are remembered for a second
    assert (await remote.get("/version", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"server": "yes"}, "server: expected a mapping"),
        ({"server": {"require_tokens": True}}, "server.require_tokens: unknown setting"),
        ({"server": {"require_token": "yes"}}, "server.require_token: expected true or false"),
    ],
)
def test_a_bad_server_section_is_explained(section: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        auth_settings(section)


def test_listening_beyond_loopback_needs_a_token_first(workspace: Workspace) -> None:
    check_can_listen(workspace.store, "127.0.0.1")
    with pytest.raises(InvalidInput, match=r"refusing to listen on 0\.0\.0\.0: clients beyond loopback need"):
        check_can_listen(workspace.store, "0.0.0.0")
    create_token(workspace.store, "first")
    check_can_listen(workspace.store, "0.0.0.0")


def test_cli_creates_lists_and_revokes_tokens(workspace: Workspace) -> None:
    created = keel_cli(workspace, "token", "create", "ci", "-o", "json")
    assert created.returncode == 0, created.stderr
    import json

    text = json.loads(created.stdout)["token"]
    assert check_token(workspace.store, text) == "ci"
    listed = keel_cli(workspace, "token", "list")
    assert "ci" in listed.stdout and text not in listed.stdout and "never" not in listed.stdout
    assert keel_cli(workspace, "token", "revoke", "ci").returncode == 0
    again = keel_cli(workspace, "token", "revoke", "ci")
    assert again.returncode == 1 and again.stderr.startswith("error: no token named 'ci'")


# -- a real server -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _outward_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("203.0.113.1", 9))
        address: str = probe.getsockname()[0]
    assert not address.startswith("127."), "this machine needs a non-loopback address for this test"
    return address


@pytest.fixture
def server(workspace: Workspace) -> Iterator[tuple[int, str]]:
    """``keel server`` on every interface (allowed: a token exists); yields (port, token)."""
    _, text = create_token(workspace.store, "tests")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace.config.root), "server"]
    process = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_healthy(process, f"http://127.0.0.1:{port}")
        yield port, text
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
    assert b"Traceback" not in errors, errors.decode()
    assert b"tokens travel in clear" in errors


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "keel server exited at start-up"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("keel server did not answer /health within 30 s")


def test_a_real_server_asks_clients_on_the_network_for_a_token(server: tuple[int, str]) -> None:
    port, text = server
    outside = f"http://{_outward_address()}:{port}"
    assert httpx.get(f"{outside}/health").status_code == 200
    assert httpx.get(f"{outside}/version").status_code == 401
    assert httpx.get(f"{outside}/version", headers={"Authorization": f"Bearer {text}"}).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/version").status_code == 200  # loopback


@pytest.mark.slow
def test_the_mlflow_client_sends_its_tracking_token(
    server: tuple[int, str], monkeypatch: pytest.MonkeyPatch, workspace: Workspace
) -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    port, text = server
    url = f"http://{_outward_address()}:{port}"
    for name, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(url)
    try:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        with pytest.raises(MlflowException, match=r"(?i)unauthenticated|401|token"):
            mlflow.MlflowClient().search_experiments()
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", text)
        client = mlflow.MlflowClient()
        experiment_id = client.create_experiment("with-token")
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "auc", 0.91)
        client.set_terminated(run.info.run_id)
        assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.91}
    finally:
        mlflow.set_tracking_uri(None)
    from keel.tracking.jobs import get_job

    assert get_job(workspace.store, run.info.run_id).metrics["auc"].last == 0.91
    (token,) = list_tokens(workspace.store)
    assert token.last_used_at is not None
