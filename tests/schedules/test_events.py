"""Events from outside through the real ASGI app: signed, filtered, fired once per event id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.jobs.submit import load_spec
from keel.schedules.events import sign, signed_headers
from keel.schedules.operations import create_schedule, set_enabled
from keel.server.app import create_app
from keel.store.schema import jobs, schedule_fires
from keel.workspace import Workspace
from tests.schedules.conftest import write

JOB = """\
type: command
command: echo ${{inputs.region}} ${{inputs.rows}}
inputs:
  region: ${{trigger.data.region}}
  rows: ${{trigger.data.rows}}
"""
SCHEDULE = """\
name: on_upload
trigger:
  type: event
  subject_begins_with: /uploads/
  event_types: [Upload.Finished]
create_job: ./job.yml
"""


@pytest.fixture
def secret(workspace: Workspace, tmp_path: Path) -> str:
    write(tmp_path, "job.yml", JOB)
    created = create_schedule(workspace, write(tmp_path, "s.yml", SCHEDULE))
    assert created.secret is not None
    return created.secret


def post(
    workspace: Workspace, body: bytes, headers: dict[str, str], name: str = "on_upload"
) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(workspace), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
            return await client.post(f"/api/schedules/{name}/events", content=body, headers=headers)

    return asyncio.run(send())


def event(event_id: str = "e-1", **fields: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "subject": "/uploads/eu/day.csv",
        "eventType": "Upload.Finished",
        "data": {"region": "eu", "rows": 120},
        **fields,
    }


def counts(workspace: Workspace) -> tuple[int, int]:
    with workspace.store.read() as conn:
        fired = conn.execute(select(func.count()).select_from(schedule_fires)).scalar_one()
        made = conn.execute(select(func.count()).select_from(jobs)).scalar_one()
    return int(fired), int(made)


def test_a_signed_event_fires_its_job_once_with_its_data(workspace: Workspace, secret: str) -> None:
    body = json.dumps(event()).encode()
    answer = post(workspace, body, signed_headers(secret, body))
    assert answer.status_code == 202, answer.text
    [fired] = answer.json()["fired"]
    assert fired["duplicate"] is False and fired["state"] in ("submitted", "started")
    _, spec = load_spec(workspace, fired["job"])
    assert spec.root.inputs["region"].value == "eu" and spec.root.inputs["rows"].value == 120
    again = post(workspace, body, signed_headers(secret, body))  # the sender retries
    [repeated] = again.json()["fired"]
    assert again.status_code == 200 and repeated["duplicate"] is True and repeated["job"] == fired["job"]
    assert counts(workspace) == (1, 1)


@pytest.mark.parametrize("tamper", ["signature", "body", "stale", "unsigned", "other secret"])
def test_a_badly_signed_event_is_refused_and_fires_nothing(
    workspace: Workspace, secret: str, tamper: str
) -> None:
    body = json.dumps(event()).encode()
    headers = signed_headers(secret, body)
    if tamper == "signature":
        headers["x-keel-signature"] = "sha256=" + "0" * 64
    elif tamper == "body":
        body = json.dumps(event(data={"region": "us", "rows": 1})).encode()
    elif tamper == "stale":
        headers = signed_headers(secret, body, timestamp=1_000_000_000)
    elif tamper == "unsigned":
        headers = {}
    else:
        headers = {
            "x-keel-timestamp": headers["x-keel-timestamp"],
            "x-keel-signature": sign("not-the-secret", int(headers["x-keel-timestamp"]), body),
        }
    answer = post(workspace, body, headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert secret not in answer.text
    assert counts(workspace) == (0, 0)


def test_filters_and_bad_payloads(workspace: Workspace, secret: str) -> None:
    batch = [event("a", subject="/downloads/x"), event("b", eventType="Upload.Started")]
    body = json.dumps(batch).encode()
    answer = post(workspace, body, signed_headers(secret, body))
    assert answer.status_code == 200 and answer.json()["fired"] == []
    assert [item["id"] for item in answer.json()["ignored"]] == ["a", "b"]
    missing = json.dumps(event("c", data={"region": "eu"})).encode()
    answer = post(workspace, missing, signed_headers(secret, missing))
    assert answer.status_code == 400 and "trigger.data.rows" in answer.json()["error"]["message"]
    not_json = b"{not json"
    assert post(workspace, not_json, signed_headers(secret, not_json)).status_code == 400
    assert counts(workspace) == (0, 0)


def test_disabled_unknown_and_non_event_schedules(workspace: Workspace, secret: str, tmp_path: Path) -> None:
    body = json.dumps(event()).encode()
    set_enabled(workspace, "on_upload", False)
    assert post(workspace, body, signed_headers(secret, body)).status_code == 409
    assert post(workspace, body, signed_headers(secret, body), name="nobody").status_code == 404
    create_schedule(
        workspace,
        write(
            tmp_path,
            "c.yml",
            "name: hourly\ntrigger: {type: cron, expression: "
            "'0 * * * *'}\ncreate_job:\n  type: command\n  command: echo hi\n",
        ),
    )
    assert post(workspace, body, signed_headers(secret, body), name="hourly").status_code == 404
    assert counts(workspace) == (0, 0)
