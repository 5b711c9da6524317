"""Data assets on Azure Blob storage (Azurite): references with manifests, and a workspace on blob."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.data.assets import Request, download, materialize, register
from keel.data.datastore_specs import parse_spec
from keel.data.datastores import create_datastore
from keel.errors import Conflict, NotFound, PermissionDenied
from keel.workspace import Workspace, WorkspaceConfig
from tests.azurite import Azurite

JAN = b"carrier,delay\nUA,3\nAA,-3\n"
FEB = b"carrier,delay\n" + b"DL,5\n" * 1000


def _connection(azurite: Azurite) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={azurite.key};"
        f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};"
    )


def _container(azurite: Azurite, name: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(_connection(azurite)).get_container_client(name)
    if not client.exists():
        client.create_container()
    return client


def _upload_in_blocks(container: Any, name: str, data: bytes) -> None:
    """A blob committed from a block list: the service keeps no Content-MD5 for it."""
    blob = container.get_blob_client(name)
    blob.stage_block("YmxvY2stMQ==", data)
    blob.commit_block_list(["YmxvY2stMQ=="])


@pytest.fixture
def lake(workspace: Workspace, azurite: Azurite, request: pytest.FixtureRequest) -> Any:
    """A container with two monthly files, registered as the datastore ``lake``."""
    name = f"lake{request.node.name.__hash__() & 0xFFFFFF:x}"
    container = _container(azurite, name)
    container.upload_blob("monthly/jan.csv", JAN, overwrite=True)
    _upload_in_blocks(container, "monthly/feb.csv", FEB)
    create_datastore(workspace, parse_spec(azurite.datastore("lake", name)))
    return container


def test_a_blob_folder_is_referenced_with_a_hash_per_file(
    workspace: Workspace, lake: Any, tmp_path: Path
) -> None:
    asset, _ = register(workspace, Request("monthly", "azureml://datastores/lake/paths/monthly"))
    assert asset.path == "azureml://datastores/lake/paths/monthly"
    assert not workspace.artifacts.local_path("cas", allow_empty=True).exists()  # nothing was copied
    feb, jan = asset.manifest(workspace).entries
    assert (jan.path, jan.size, jan.hash_from) == ("jan.csv", len(JAN), "Content-MD5")
    assert jan.hash == "md5:" + hashlib.md5(JAN).hexdigest()
    assert (feb.path, feb.hash_from) == ("feb.csv", "content")  # no store hash: streamed
    assert feb.hash == "sha256:" + hashlib.sha256(FEB).hexdigest()
    assert jan.etag and jan.modified and feb.etag
    local = materialize(workspace, asset, tmp_path / "cache")
    assert (local / "jan.csv").read_bytes() == JAN and (local / "feb.csv").read_bytes() == FEB
    assert download(workspace, "monthly:1", tmp_path / "out") == tmp_path / "out" / "monthly"
    pattern, _ = register(workspace, Request("jan", "azureml://datastores/lake/paths/*/j*.csv"))
    assert [e.path for e in pattern.manifest(workspace).entries] == ["monthly/jan.csv"]


def test_a_changed_blob_is_caught_when_the_version_is_read(
    workspace: Workspace, lake: Any, tmp_path: Path
) -> None:
    asset, _ = register(workspace, Request("monthly", "azureml://datastores/lake/paths/monthly/"))
    lake.upload_blob("monthly/jan.csv", JAN.replace(b"3", b"4"), overwrite=True)
    with pytest.raises(Conflict, match=r"jan\.csv no longer matches the version's manifest"):
        materialize(workspace, asset, tmp_path / "cache")
    assert not (tmp_path / "cache" / "data").exists() or not any((tmp_path / "cache" / "data").iterdir())
    file_asset, _ = register(
        workspace, Request("feb", "azureml://datastores/lake/paths/monthly/feb.csv", type="uri_file")
    )
    assert materialize(workspace, file_asset, tmp_path / "cache").read_bytes() == FEB


def test_references_that_cannot_be_read_write_nothing(
    workspace: Workspace, lake: Any, azurite: Azurite
) -> None:
    wrong = "V1JPTkc" + "A" * 81
    create_datastore(workspace, parse_spec(azurite.datastore("locked", lake.container_name, key=wrong)))
    with pytest.raises(PermissionDenied, match="datastore 'locked': authentication failed") as caught:
        register(workspace, Request("x", "azureml://datastores/locked/paths/monthly"))
    assert wrong not in str(caught.value)
    with pytest.raises(NotFound, match="no files at"):
        register(workspace, Request("x", "azureml://datastores/lake/paths/monthly/*.parquet"))
    with pytest.raises(NotFound, match="nothing at azureml://datastores/lake/paths/yearly"):
        register(workspace, Request("x", "azureml://datastores/lake/paths/yearly"))
    with workspace.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM data_assets").scalar() == 0


@pytest.fixture
def blob_workspace(tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace whose artifact store is a blob container."""
    _container(azurite, "artifacts")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", _connection(azurite))
    root = tmp_path / "ws"
    config = WorkspaceConfig(
        root=root,
        database_url=f"sqlite:///{root / 'keel.db'}",
        artifacts_url=f"abfs://artifacts/{tmp_path.name}",
    )
    root.mkdir()
    workspace = Workspace(config)
    yield workspace
    workspace.close()


def test_uploads_to_a_workspace_on_blob_storage(blob_workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "jan.csv").write_bytes(JAN)
    asset, _ = register(blob_workspace, Request("monthly", str(folder)))
    again, _ = register(blob_workspace, Request("copy", str(folder)))
    assert again.path == asset.path and asset.path.startswith(
        "azureml://datastores/workspaceblobstore/paths/cas/"
    )
    local = materialize(blob_workspace, asset, tmp_path / "cache")
    assert local == tmp_path / "cache" / "data" / asset.digest[7:]  # type: ignore[index]
    assert sorted(p.name for p in local.iterdir()) == ["jan.csv"]
