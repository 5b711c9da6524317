"""Copies to and from Azure Blob (Azurite, the real emulator), through a registered datastore."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from keel.data.copy import CopyRequest, Options, copy, verify
from keel.data.datastore_specs import parse_spec
from keel.data.datastores import create_datastore
from keel.data.locations import resolve_location
from keel.errors import PermissionDenied
from keel.workspace import Workspace
from tests.azurite import Azurite
from tests.data.test_copy_local import FLIGHTS, contents, job_count, keel, make_tree

# adlfs stages the blocks of a large upload as raw bytes, which aiohttp (under azure-core)
# flags with a ResourceWarning (ignored outside tests); the uploads themselves are fine.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")


def _client(azurite: Azurite):  # type: ignore[no-untyped-def]
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={azurite.key};"
        f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};"
    )


@pytest.fixture
def landing(workspace: Workspace, azurite: Azurite) -> str:
    """A fresh container, registered as the datastore ``landing``; returns its URI prefix."""
    container = f"c{uuid.uuid4().hex[:12]}"
    _client(azurite).create_container(container)
    create_datastore(workspace, parse_spec(azurite.datastore("landing", container)))
    return "azureml://datastores/landing/paths"


def test_local_to_blob_and_back_is_identical_and_checked(
    workspace: Workspace, tmp_path: Path, landing: str
) -> None:
    files = {**FLIGHTS, "big/part.bin": os.urandom(6 << 20)}  # one file past the one-request upload
    source = make_tree(tmp_path / "raw", files)
    up = copy(workspace, CopyRequest((str(source),), f"{landing}/raw"))
    assert up.ok and up.counters.files_copied == 5
    assert up.counters.store_hash_checked == 4  # Azure's MD5 of each one-request upload matched
    down = copy(workspace, CopyRequest((f"{landing}/raw",), str(tmp_path / "back")))
    assert down.ok and contents(tmp_path / "back") == files
    assert down.digest == up.digest  # the same content digest on both sides
    checked = verify(workspace, str(source), f"{landing}/raw")
    assert checked.ok and checked.by_store_hash == 4 and checked.by_content == 1


def test_no_partial_blob_is_ever_listed(workspace: Workspace, tmp_path: Path, landing: str) -> None:
    source = make_tree(tmp_path / "raw", {"large.bin": os.urandom(12 << 20)})
    target = resolve_location(workspace, f"{landing}/slow")
    seen: list[tuple[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while True:
            finished = stop.is_set()  # one more scan after the copy ends
            target.fs.invalidate_cache()
            for name, info in target.fs.find(target.path, detail=True).items():
                seen.append((name, int(info["size"])))
            if finished:
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = copy(
            workspace, CopyRequest((str(source),), f"{landing}/slow", Options(bandwidth_limit="16M"))
        )
    finally:
        stop.set()
        watcher.join()
    assert result.ok and seen  # the blob was listed, and only ever whole
    assert {size for _, size in seen} == {12 << 20}


def test_an_abandoned_upload_leaves_no_blob(workspace: Workspace, tmp_path: Path, landing: str) -> None:
    source = make_tree(tmp_path / "raw", {"large.bin": os.urandom(12 << 20)})

    def append() -> None:
        with (source / "large.bin").open("ab") as handle:
            handle.write(b"late")

    writer = threading.Timer(0.3, append)
    writer.start()
    result = copy(
        workspace, CopyRequest((str(source),), f"{landing}/changed", Options(bandwidth_limit="16M"))
    )
    writer.join()
    assert not result.ok and "changed" in result.problems.failed[0][1]
    target = resolve_location(workspace, f"{landing}/changed")
    target.fs.invalidate_cache()
    assert not target.fs.exists(f"{target.path}/large.bin")


def test_sync_to_blob_deletes_extras(workspace: Workspace, tmp_path: Path, landing: str) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    copy(workspace, CopyRequest((str(source),), f"{landing}/mirror"))
    (source / "readme.md").unlink()
    synced = copy(workspace, CopyRequest((str(source),), f"{landing}/mirror", Options(sync=True)))
    assert synced.ok and synced.counters.files_deleted == 1 and synced.counters.files_unchanged == 3
    assert verify(workspace, str(source), f"{landing}/mirror").ok


def test_wrong_credentials_fail_before_anything_is_written(
    workspace: Workspace, tmp_path: Path, azurite: Azurite, landing: str
) -> None:
    wrong = "QUJD" * 22
    create_datastore(workspace, parse_spec(azurite.datastore("wrongkey", "anything", key=wrong)))
    source = make_tree(tmp_path / "raw", FLIGHTS)
    for arguments in (
        [str(source), "azureml://datastores/wrongkey/paths/raw"],
        ["azureml://datastores/wrongkey/paths/raw", str(tmp_path / "out")],
    ):
        result = keel(workspace, "data", "copy", *arguments)
        assert result.returncode == 1 and "authentication failed" in result.stderr
        assert wrong not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists() and job_count(workspace) == 0


def test_unreadable_blobs_are_skipped_with_skip_forbidden(
    workspace: Workspace, tmp_path: Path, azurite: Azurite, landing: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    source = make_tree(tmp_path / "raw", FLIGHTS)
    copy(workspace, CopyRequest((str(source),), f"{landing}/locked"))
    container = resolve_location(workspace, landing + "/x").path.split("/", 1)[0]
    token = generate_container_sas(
        azurite.account,
        container,
        account_key=azurite.key,
        permission=ContainerSasPermissions(list=True),  # may list, may not read
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    spec = {**azurite.datastore("listonly", container), "credentials": {"sas_token": token}}
    create_datastore(workspace, parse_spec(spec))
    request = CopyRequest(("azureml://datastores/listonly/paths/locked",), str(tmp_path / "out"))
    try:
        failed = copy(workspace, request)
    except PermissionDenied:
        pytest.fail("listing with a list-only token should work; reading each blob should not")
    assert not failed.ok and failed.counters.files_failed == 4
    skipped = copy(workspace, request.with_options(skip_forbidden=True))
    assert skipped.ok and skipped.counters.files_skipped == 4 and not (tmp_path / "out").exists()
    assert all("forbidden" in reason for _, reason in skipped.problems.skipped)
