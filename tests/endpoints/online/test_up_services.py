"""`keel up` as the workspace's one long-running host: schedules, /api/jobs, events, approvals.

A real `keel up` runs on loopback (``python -m keel.cli.main up --port 0``, as in the
other online tests); schedules and jobs are real, their runners real processes, and
every count is read back from the store. The token rules are checked in-process on
the real ASGI app, posing as a client on another address (a socket test would need
a second machine).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.jobs.submit import load_spec
from keel.schedules import fires, records
from keel.schedules.events import signed_headers
from keel.schedules.operations import create_schedule
from keel.store.schema import schedule_fires
from keel.workspace import Workspace
from tests.endpoints.online.conftest import Served

YAML = {"Content-Type": "application/yaml"}
ELSEWHERE = ("203.0.113.9", 40000)  # a client that is not on loopback
ECHO_JOB = 'type: command\ncommand: echo "${{inputs.note}}"\ninputs:\n  note: ${{trigger.time}}\n'
EVERY_SECOND = "name: {name}\ntrigger: {{type: cron, expression: '* * * * * *'}}\ncreate_job: ./job.yml\n"
EVENT_JOB = "type: command\ncommand: echo ${{inputs.region}}\ninputs:\n  region: ${{trigger.data.region}}\n"
EVENT_SCHEDULE = (
    "name: on_upload\ntrigger: {type: event, event_types: [Upload.Finished]}\ncreate_job: ./event.yml\n"
)


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.1)


def finished_fires(workspace: Workspace, name: str) -> list[fires.Fire]:
    schedule = records.get_schedule(workspace.store, name)
    return [
        f for f in fires.recent_fires(workspace.store, schedule.id, limit=100) if f.state in fires.FINISHED
    ]


def fire_count(workspace: Workspace) -> int:
    with workspace.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(schedule_fires)).scalar_one())


def until_ended(url: str, name: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Long-poll ``GET /api/jobs/{name}?wait=`` until the job is final."""
    for _ in range(10):
        answer = httpx.get(f"{url}/api/jobs/{name}", params={"wait": 20}, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["terminal"]:
            return job
    raise AssertionError(f"job {name} did not end")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `keel up` (scheduler included) for the module's tests; each uses schedules of its own."""
    host = Served(tmp_path_factory.mktemp("up") / ".keel", {}).start()
    yield host
    host.stop()
    host.workspace.close()


def test_an_every_second_schedule_fires_under_keel_up(up: Served) -> None:
    folder = up.root.parent
    write(folder, "job.yml", ECHO_JOB)
    create_schedule(up.workspace, write(folder, "every.yml", EVERY_SECOND.format(name="every_second")))
    done = wait_for(lambda: len(finished_fires(up.workspace, "every_second")) >= 2, what="two fires")
    assert done
    ended = finished_fires(up.workspace, "every_second")
    assert all(f.state == fires.FireState.COMPLETED for f in ended), [(f.state, f.error) for f in ended]
    assert len({f.key for f in ended}) == len(ended)  # each second fired once


def test_run_and_wait_over_keel_up(up: Served) -> None:
    created = httpx.post(
        f"{up.url}/api/jobs", content="command: echo from CI\nexperiment_name: ci\n", headers=YAML
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/jobs/{created.json()['name']}"
    job = until_ended(up.url, created.json()["name"])
    assert (job["status"], job["exit_code"], job["experiment"]) == ("completed", 0, "ci")
    assert job["tags"]["keel.submitted_by"] == "loopback"
    failing = httpx.post(f"{up.url}/api/jobs", content="command: exit 3\n", headers=YAML).json()["name"]
    ended = until_ended(up.url, failing)
    assert (ended["status"], ended["exit_code"]) == ("failed", 1)
    assert "the command exited with code 3" in ended["status_reason"]
    missing = httpx.get(f"{up.url}/api/jobs/no_such_job")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_signed_event_through_keel_up_fires_a_job(up: Served) -> None:
    folder = up.root.parent
    write(folder, "event.yml", EVENT_JOB)
    secret = create_schedule(up.workspace, write(folder, "on_upload.yml", EVENT_SCHEDULE)).secret
    assert secret is not None
    body = json.dumps({"id": "upload-1", "eventType": "Upload.Finished", "data": {"region": "eu"}}).encode()
    url = f"{up.url}/api/schedules/on_upload/events"
    refused = httpx.post(url, content=body, headers={"x-keel-signature": "sha256=" + "0" * 64})
    assert refused.status_code == 401 and secret not in refused.text
    answer = httpx.post(url, content=body, headers=signed_headers(secret, body))
    assert answer.status_code == 202, answer.text
    [fired] = answer.json()["fired"]
    assert until_ended(up.url, fired["job"])["status"] == "completed"
    _, spec = load_spec(up.workspace, fired["job"])
    assert spec.root.inputs["region"].value == "eu"
    again = httpx.post(url, content=body, headers=signed_headers(secret, body))  # the sender retries
    assert again.status_code == 200 and again.json()["fired"][0]["job"] == fired["job"]


def test_a_timed_out_approval_settles_under_keel_up(up: Served) -> None:
    from keel.tracking.entities import JobStatus
    from tests.approvals.conftest import gated, start, wait_until_ended

    job = start(up.workspace, gated(up.root.parent, "    timeout: 1s\n    on_timeout: approve", name="gate"))
    assert job.status == JobStatus.PAUSED, job.status_reason
    ended = wait_until_ended(up.workspace, job.name, timeout=60)  # nobody looks: keel up decides
    assert ended.status == JobStatus.COMPLETED, ended.status_reason


def test_no_scheduler_fires_nothing_and_require_token_guards_the_api(tmp_path: Path) -> None:
    from keel.server.tokens import create_token

    host = Served(tmp_path / ".keel", {})
    try:
        write(tmp_path, "job.yml", ECHO_JOB)
        create_schedule(host.workspace, write(tmp_path, "every.yml", EVERY_SECOND.format(name="idle")))
        _, token = create_token(host.workspace.store, "ci")
        host.start("--no-scheduler", "--require-token")
        refused = httpx.post(f"{host.url}/api/jobs", content="command: 'true'\n", headers=YAML)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert httpx.get(f"{host.url}/v2/health/live").status_code == 200  # health stays open
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{host.url}/api/jobs", content="command: 'true'\n", headers={**YAML, **headers})
        assert created.status_code == 201, created.text
        assert (
            until_ended(host.url, created.json()["name"], headers)["tags"]["keel.submitted_by"] == "token ci"
        )
        time.sleep(3)  # three due seconds, and nothing to claim them
        assert fire_count(host.workspace) == 0
    finally:
        output = host.stop()
        host.workspace.close()
    assert "schedules: run by a separate `keel scheduler`" in output


def test_token_rules_beside_endpoint_keys(workspace: Workspace) -> None:
    """Beyond loopback: /api needs a workspace token, endpoint routes answer with their own auth."""
    from keel.endpoints.online.gateway import Gateway
    from keel.endpoints.online.host import WithControl, control_app
    from keel.server.tokens import create_token

    _, token = create_token(workspace.store, "remote")
    app = WithControl(Gateway(require_auth=True), control_app(workspace, require_token=False))

    async def call(method: str, path: str, **options: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=ELSEWHERE)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
            return await client.request(method, path, **options)

    unauthenticated = asyncio.run(call("GET", "/api/jobs/anything"))
    assert unauthenticated.status_code == 401 and unauthenticated.headers["www-authenticate"]
    with_token = asyncio.run(call("GET", "/api/jobs/anything", headers={"Authorization": f"Bearer {token}"}))
    assert with_token.status_code == 404 and with_token.json()["error"]["code"] == "not_found"
    event = asyncio.run(call("POST", "/api/schedules/none/events", content=b"{}"))
    assert event.status_code == 401
    assert asyncio.run(call("GET", "/v2/health/live")).status_code == 200
    # The endpoint routes do not ask for a workspace token: their own answer, not TokenAuth's.
    scored = asyncio.run(call("POST", "/endpoints/absent/score", content=b"{}"))
    assert scored.status_code == 404 and "no online endpoint named 'absent'" in scored.text
    inferred = asyncio.run(call("POST", "/v2/models/absent/infer", content=b"{}"))
    assert inferred.status_code == 404 and "absent" in inferred.text


def test_keel_up_refuses_an_open_interface_without_a_workspace_token(workspace: Workspace) -> None:
    command = [sys.executable, "-m", "keel.cli.main", "up", "--host", "0.0.0.0", "--port", "0"]
    env = {"KEEL_WORKSPACE": str(workspace.config.root), "PATH": "/usr/bin:/bin"}
    refused = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0" in refused.stderr and "keel token create" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_scheduler_tick_settles_timed_out_approvals(workspace: Workspace, tmp_path: Path) -> None:
    """What `keel scheduler` alone does for approvals: decide timeouts and resume the pipeline."""
    from keel import approvals
    from keel.schedules.loop import Scheduler
    from keel.tracking.entities import JobStatus
    from keel.tracking.jobs import get_job
    from tests.approvals.conftest import gated, start, wait_until_ended

    job = start(workspace, gated(tmp_path, "    timeout: 1s\n    on_timeout: reject"))
    assert job.status == JobStatus.PAUSED, job.status_reason
    time.sleep(1.1)
    quiet, scheduler = Scheduler(workspace, launch=False), Scheduler(workspace)
    try:
        quiet.tick()  # a scheduler that starts no runners leaves approvals alone
        assert get_job(workspace.store, job.name).status == JobStatus.PAUSED
        scheduler.tick()
        ended = wait_until_ended(workspace, job.name)
    finally:
        quiet.close()
        scheduler.close()
    assert ended.status == JobStatus.FAILED
    (request,) = approvals.list_approvals(workspace.store, status=None)
    assert request.status_reason == "approval timed out after 1s (on_timeout: reject)"
