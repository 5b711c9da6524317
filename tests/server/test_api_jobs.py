"""Run-and-wait over HTTP: ``POST /api/jobs`` and ``GET /api/jobs/{name}?wait=N``,
with httpx against a real ``keel server`` on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.jobs.conftest import keel_cli

from keel.server.app import create_app
from keel.server.tokens import create_token
from keel.tracking.jobs import get_job
from keel.tracking.search import search_jobs
from keel.workspace import Workspace

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(workspace: Workspace, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "MLFLOW_"))}
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace.config.root), "server"]
    process = subprocess.Popen(
        [*command, "--port", str(port), *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "keel server exited at start-up"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("keel server did not answer /health within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    _, errors = process.communicate(timeout=20)
    assert b"Traceback" not in errors, errors.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    """One real server for the module, over its own workspace: (URL, workspace)."""
    workspace = Workspace.open(tmp_path_factory.mktemp("api") / ".keel")
    process, url = _start(workspace)
    try:
        yield url, workspace
    finally:
        _stop(process)
        workspace.close()


@pytest.fixture
def api(server: tuple[str, Workspace]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], timeout=90) as client:
        yield client


@pytest.fixture
def served(server: tuple[str, Workspace]) -> Workspace:
    return server[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def local_api(workspace: Workspace) -> AsyncIterator[httpx.AsyncClient]:
    """The same app in-process, for requests that are refused before anything runs."""
    transport = httpx.ASGITransport(app=create_app(workspace))
    async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
        yield client


def _until_ended(api: httpx.Client, name: str) -> dict[str, Any]:
    for _ in range(10):
        answer = api.get(f"/api/jobs/{name}", params={"wait": 30})
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["terminal"]:
            return job
    pytest.fail(f"job {name} did not end")


def test_post_yaml_then_long_poll_until_it_ends(api: httpx.Client) -> None:
    spec = "command: echo hello from CI\nexperiment_name: ci\n"
    created = api.post("/api/jobs", content=spec, headers=YAML, params={"display_name": "smoke"})
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    assert created.headers["location"] == f"/api/jobs/{name}" and created.json()["status"] == "queued"
    job = _until_ended(api, name)
    assert (job["status"], job["exit_code"], job["experiment"]) == ("completed", 0, "ci")
    assert job["display_name"] == "smoke" and job["tags"]["keel.submitted_by"] == "loopback"


def test_post_json_running_a_registered_component(
    api: httpx.Client, served: Workspace, tmp_path: Path
) -> None:
    workspace = served
    folder = tmp_path / "component"
    folder.mkdir()
    (folder / "shout.py").write_text("import sys\nprint(sys.argv[1].upper())\n")
    (folder / "shout.yml").write_text(
        "name: shout\nversion: 1\ncode: .\ncommand: python shout.py ${{inputs.word}}\n"
        "inputs:\n  word: {type: string}\n"
    )
    assert keel_cli(workspace, "component", "create", "-f", str(folder / "shout.yml")).returncode == 0
    spec = {
        "type": "pipeline",
        "jobs": {"say": {"component": "azureml:shout:1", "inputs": {"word": "deployed"}}},
    }
    created = api.post("/api/jobs", json={"spec": spec, "experiment_name": "released", "name": "release_42"})
    assert created.status_code == 201, created.text
    job = _until_ended(api, "release_42")
    assert job["status"] == "completed" and job["experiment"] == "released"
    (step,) = job["steps"]
    location = get_job(workspace.store, step["name"]).artifact_location
    assert b"DEPLOYED" in workspace.artifacts.read_bytes(f"{location}/user_logs/std_log.txt")


def test_a_failing_job_reports_exit_code_one(api: httpx.Client) -> None:
    name = api.post("/api/jobs", content="command: exit 3\n", headers=YAML).json()["name"]
    job = _until_ended(api, name)
    assert (job["status"], job["exit_code"]) == ("failed", 1)
    assert "the command exited with code 3" in job["status_reason"]


def test_wait_answers_at_its_timeout_when_the_job_is_still_running(api: httpx.Client) -> None:
    name = api.post("/api/jobs", content="command: sleep 4\n", headers=YAML).json()["name"]
    started = time.monotonic()
    answer = api.get(f"/api/jobs/{name}", params={"wait": 1}).json()
    took = time.monotonic() - started
    assert 0.9 <= took < 3.5 and answer["terminal"] is False and answer["exit_code"] is None
    assert answer["status"] in ("queued", "running")
    now = api.get(f"/api/jobs/{name}").json()  # no wait: answers at once
    assert now["terminal"] is False
    assert _until_ended(api, name)["status"] == "completed"


def test_a_paused_pipeline_lists_what_it_waits_for(api: httpx.Client, served: Workspace) -> None:
    workspace = served
    spec = {
        "type": "pipeline",
        "jobs": {
            "gate": {"type": "approval", "approvers": ["alice"], "inputs": {"n": 1}},
            "after": {"command": "echo n=${{inputs.n}}", "inputs": {"n": "${{parent.jobs.gate.outputs.n}}"}},
        },
    }
    name = api.post("/api/jobs", json={"spec": spec}).json()["name"]
    answer: dict[str, Any] = {}
    for _ in range(60):
        answer = api.get(f"/api/jobs/{name}", params={"wait": 0.5}).json()
        if answer["status"] == "paused":
            break
    assert answer["status"] == "paused" and answer["terminal"] is False
    (approval,) = answer["approvals"]
    assert approval["step"] == "gate" and approval["approvers"] == ["alice"]
    approved = keel_cli(workspace, "approval", "approve", str(approval["id"]), "--as", "alice")
    assert approved.returncode == 0, approved.stderr
    assert _until_ended(api, name)["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("command: ls\ncode: ./src\n", "code", "code cannot be a local path here"),
        ("command: cat ${{inputs.f}}\ninputs:\n  f: {type: uri_file, path: /etc/passwd}\n",
         "inputs.f.path", "data cannot be a local path here"),
        ("command: cat ${{inputs.f}}\ninputs:\n  f: {type: uri_file, path: 'file:///etc/hosts'}\n",
         "inputs.f.path", "data cannot be a local path here"),
        ("command: cat ${{inputs.f}}\ninputs:\n  f: {type: uri_file, path: 'http://169.254.169.254/x'}\n",
         "inputs.f.path", "http:// data cannot be named here"),
        ("type: pipeline\njobs:\n  a:\n    component: ../../etc/component.yml\n",
         "jobs.a.component", "a component cannot be a local path here"),
        ("command: echo > ${{outputs.o}}/x\noutputs:\n  o: {type: uri_folder, path: /tmp/elsewhere}\n",
         "outputs.o.path", "an output cannot be a local path here"),
        ("command: ls\nkode: x\n", "kode", "unknown field 'kode'"),
        ("command: [unclosed\n", "", "not valid YAML"),
    ],
)  # fmt: skip
@pytest.mark.anyio
async def test_specs_naming_local_files_are_refused_with_the_field(
    local_api: httpx.AsyncClient, workspace: Workspace, body: str, field: str, message: str
) -> None:
    answer = await local_api.post("/api/jobs", content=body, headers=YAML)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_spec" and message in error["message"] and field in error["message"]
    assert "root:" not in error["message"]  # nothing read from the server's disk is echoed
    assert search_jobs(workspace.store).jobs == []  # nothing was recorded


@pytest.mark.parametrize(
    ("request_options", "status", "code", "message"),
    [
        ({"content": b"{", "headers": JSON}, 400, "invalid_input", "not valid JSON"),
        ({"json": {"job": {}}}, 400, "invalid_input", '{"spec"'),
        ({"json": {"spec": {"command": "ls"}, "x": 1}}, 400, "invalid_input", "unknown field 'x'"),
        ({"json": {"spec": 5}}, 400, "invalid_input", "spec: expected the job"),
        ({"content": b"command: ls", "headers": {"Content-Type": "application/zip"}}, 415,
         "unsupported_media_type", "application/zip"),
        ({"content": b"#" * (1024 * 1024 + 1), "headers": YAML}, 413, "payload_too_large", "over"),
        ({"content": b"command: ls\n", "headers": YAML, "params": {"colour": "red"}}, 400, "invalid_input",
         "unknown query parameter 'colour'"),
    ],
)  # fmt: skip
@pytest.mark.anyio
async def test_malformed_requests_get_a_clear_error(
    local_api: httpx.AsyncClient, request_options: dict[str, Any], status: int, code: str, message: str
) -> None:
    answer = await local_api.post("/api/jobs", **request_options)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code and message in answer.json()["error"]["message"]


def test_reading_a_job_checks_its_name_and_wait(api: httpx.Client) -> None:
    missing = api.get("/api/jobs/no_such_job")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    name = api.post("/api/jobs", content="command: 'true'\n", headers=YAML).json()["name"]
    for wait in ("-1", "601", "soon"):
        bad = api.get(f"/api/jobs/{name}", params={"wait": wait})
        assert bad.status_code == 400 and "wait: expected" in bad.json()["error"]["message"]


def test_the_api_needs_a_token_when_the_workspace_requires_one(workspace: Workspace) -> None:
    _, text = create_token(workspace.store, "ci")
    process, url = _start(workspace, "--require-token")
    try:
        refused = httpx.post(f"{url}/api/jobs", content="command: 'true'\n", headers=YAML)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        headers = {**YAML, "Authorization": f"Bearer {text}"}
        created = httpx.post(f"{url}/api/jobs", content="command: 'true'\n", headers=headers)
        assert created.status_code == 201, created.text
        name = created.json()["name"]
        answer = httpx.get(f"{url}/api/jobs/{name}", params={"wait": 30}, headers=headers, timeout=60).json()
        assert answer["status"] == "completed" and answer["tags"]["keel.submitted_by"] == "token ci"
    finally:
        _stop(process)
