"""Storage events: a watched local folder (OS notifications) and a blob container (listings),
each file fired once, files that came while no scheduler ran fired when one starts."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.jobs.submit import load_spec
from keel.schedules import fires, records
from keel.schedules.fires import Fire
from keel.schedules.loop import Scheduler
from keel.schedules.operations import create_schedule
from keel.workspace import Workspace
from tests.azurite import Azurite
from tests.schedules.conftest import wait_for, write

FILE_JOB = """\
type: command
command: echo ${{inputs.file}}
inputs:
  file: '${{trigger.event}} ${{trigger.file_name}} ${{trigger.file_path}}'
"""


def fired(workspace: Workspace, name: str) -> list[Fire]:
    schedule = records.get_schedule(workspace.store, name)
    return sorted(fires.recent_fires(workspace.store, schedule.id, limit=1000), key=lambda f: f.id)


def note(workspace: Workspace, fire: Fire) -> str:
    """The value the fire's job was given (read from its stored spec: the job did not run)."""
    _, spec = load_spec(workspace, fire.job_name or "")
    return str(spec.root.inputs["file"].value)


class Running:
    """A scheduler running its loop in a thread, as `keel scheduler` does."""

    def __init__(self, workspace: Workspace) -> None:
        self.scheduler = Scheduler(workspace, launch=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.scheduler.run, args=(self.stop,), kwargs={"tick_seconds": 0.2}
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.scheduler.wake.set()
        self.thread.join(timeout=10)


@pytest.fixture
def incoming(workspace: Workspace, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "before.csv").write_text("already here\n")
    write(tmp_path, "job.yml", FILE_JOB)
    create_schedule(
        workspace,
        write(
            tmp_path,
            "s.yml",
            "name: files\ntrigger:\n  type: storage_event\n"
            "  path: ./incoming\n  path_ends_with: .csv\n  events: [created, deleted]\n"
            "create_job: ./job.yml\n",
        ),
    )
    yield folder


def submitted(workspace: Workspace, count: int) -> list[Fire]:
    found = [f for f in fired(workspace, "files") if f.state.value == "submitted"]
    return found if len(found) >= count else []


def test_files_written_into_a_watched_folder_fire_once_each(
    workspace: Workspace, tmp_path: Path, incoming: Path
) -> None:
    running = Running(workspace)
    try:
        wait_for(running.scheduler.watcher.watched, timeout=10)
        with open(incoming / "a.csv", "w") as handle:  # written in two parts: fires once, when closed
            handle.write("x,y\n")
            handle.flush()
            handle.write("1,2\n")
        (incoming / "ignored.txt").write_text("not a csv\n")
        (incoming / "empty.csv").write_text("")
        outside = tmp_path / "b.csv"
        outside.write_text("moved in whole\n")
        os.rename(outside, incoming / "b.csv")
        (incoming / "sub").mkdir()
        (incoming / "sub" / "c.csv").write_text("in a subfolder\n")
        wait_for(lambda: submitted(workspace, 3), timeout=30)
        (incoming / "a.csv").unlink()
        wait_for(lambda: submitted(workspace, 4), timeout=30)
    finally:
        running.close()
    notes = sorted(note(workspace, f) for f in fired(workspace, "files"))
    assert notes == [
        f"created a.csv {incoming}/a.csv",
        f"created b.csv {incoming}/b.csv",
        f"created c.csv {incoming}/sub/c.csv",
        f"deleted a.csv {incoming}/a.csv",
    ]


def test_files_that_came_while_no_scheduler_ran_fire_when_one_starts(
    workspace: Workspace, incoming: Path
) -> None:
    for name in ("one.csv", "two.csv"):
        (incoming / name).write_text("late\n")
    os.utime(incoming / "one.csv", (1, 1))  # settled long ago
    os.utime(incoming / "two.csv", (1, 1))
    (incoming / "before.csv").unlink()
    scheduler = Scheduler(workspace, launch=False)
    scheduler.tick()
    scheduler.tick()
    scheduler.watcher.stop()
    events = sorted(" ".join(note(workspace, f).split()[:2]) for f in fired(workspace, "files"))
    assert events == ["created one.csv", "created two.csv", "deleted before.csv"]
    again = Scheduler(workspace, launch=False)  # a restart finds nothing new
    again.tick()
    again.watcher.stop()
    assert len(fired(workspace, "files")) == 3


def test_a_blob_container_is_listed_against_its_checkpoint(
    workspace: Workspace, tmp_path: Path, azurite: Azurite
) -> None:
    from azure.storage.blob import BlobServiceClient

    from keel.data.datastore_specs import parse_spec
    from keel.data.datastores import create_datastore

    container = f"c{uuid.uuid4().hex[:12]}"
    client = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={azurite.key};"
        f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};"
    ).get_container_client(container)
    client.create_container()
    client.upload_blob("landing/old.csv", b"before the schedule\n")
    create_datastore(workspace, parse_spec(azurite.datastore("landing", container)))
    write(tmp_path, "job.yml", FILE_JOB)
    create_schedule(
        workspace,
        write(
            tmp_path,
            "s.yml",
            "name: blobs\ntrigger:\n  type: storage_event\n"
            "  datastore: azureml:landing\n  path_begins_with: landing/\n"
            "  poll_interval_seconds: 0.2\ncreate_job: ./job.yml\n",
        ),
    )
    client.upload_blob("landing/new.csv", b"after\n")
    client.upload_blob("elsewhere/skip.csv", b"not under landing/\n")
    scheduler = Scheduler(workspace, launch=False)
    found = wait_for(lambda: fired(workspace, "blobs"), tick=scheduler.tick, timeout=30, every=0.3)
    for _ in range(3):
        scheduler.tick()
    scheduler.watcher.stop()
    assert [note(workspace, f) for f in fired(workspace, "blobs")] == [
        "created new.csv azureml://datastores/landing/paths/landing/new.csv"
    ]
    assert found[0].state.value == "submitted"
