"""Datastores against real storage: Azurite for Azure Blob, a folder for local."""

from __future__ import annotations

import pytest

from keel.data.datastores import (
    create_datastore,
    delete_datastore,
    get_datastore,
    list_datastores,
    parse_spec,
    storage_errors,
)
from keel.data.locations import resolve_location
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.workspace import Workspace
from tests.azurite import Azurite


def _container(azurite: Azurite, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={azurite.key};"
        f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};"
    )
    if not client.get_container_client(name).exists():
        client.create_container(name)


def test_a_blob_datastore_reads_and_writes_through_azurite(workspace: Workspace, azurite: Azurite) -> None:
    _container(azurite, "raw")
    create_datastore(workspace, parse_spec(azurite.datastore("landing", "raw")))
    target = resolve_location(workspace, "azureml://datastores/landing/paths/2013/jan.csv")
    with storage_errors("landing"):
        target.fs.pipe(target.path, b"carrier,delay\nUA,3\n")
        assert target.fs.cat(target.path) == b"carrier,delay\nUA,3\n"
    assert target.uri == "azureml://datastores/landing/paths/2013/jan.csv"


def test_credentials_are_sealed_and_never_shown(workspace: Workspace, azurite: Azurite) -> None:
    created = create_datastore(workspace, parse_spec(azurite.datastore("sealed", "raw")))
    assert azurite.key not in str(created.describe()) and azurite.key not in repr(created)
    assert created.describe()["credentials"] == {"account_key": "********"}
    with workspace.store.read() as conn:
        stored = conn.exec_driver_sql("SELECT credentials FROM datastores").scalar()
    assert azurite.key not in stored


def test_a_wrong_key_is_a_clear_authentication_error(workspace: Workspace, azurite: Azurite) -> None:
    _container(azurite, "raw")
    wrong = "QUJD" * 22
    create_datastore(workspace, parse_spec(azurite.datastore("wrongkey", "raw", key=wrong)))
    target = resolve_location(workspace, "azureml://datastores/wrongkey/paths/x.csv")
    with pytest.raises(PermissionDenied, match="authentication failed") as caught, storage_errors("wrongkey"):
        target.fs.cat(target.path)
    assert wrong not in str(caught.value)


def test_local_datastores_and_the_workspace_default(workspace: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "share").mkdir()
    create_datastore(
        workspace, parse_spec({"type": "local", "name": "share", "path": str(tmp_path / "share")})
    )
    names = [d.name for d in list_datastores(workspace)]
    assert names == ["workspaceblobstore", "share"]
    assert get_datastore(workspace, "workspaceblobstore").type == "workspace"
    with pytest.raises(Conflict):
        delete_datastore(workspace, "workspaceblobstore")
    delete_datastore(workspace, "share")
    with pytest.raises(NotFound, match="no datastore named 'share'"):
        get_datastore(workspace, "share")


def test_paths_cannot_leave_a_datastore(workspace: Workspace) -> None:
    with pytest.raises(InvalidInput, match=r"'\.\.'"):
        resolve_location(workspace, "azureml://datastores/workspaceblobstore/paths/../../etc/passwd")
