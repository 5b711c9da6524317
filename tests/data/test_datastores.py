"""Datastores against real storage: Azurite for Azure Blob, a folder for local."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from keel.data.datastore_specs import parse_spec
from keel.data.datastores import (
    create_datastore,
    delete_datastore,
    get_datastore,
    list_datastores,
    storage_errors,
)
from keel.data.locations import resolve_location
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from keel.workspace import Workspace
from tests.azurite import Azurite
from tests.jobs.conftest import keel_cli


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


# -- the CLI ---------------------------------------------------------------------------------


def _yaml(path: Path, document: dict[str, object]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _everything_printed(*results: subprocess.CompletedProcess[str]) -> str:
    return "".join(result.stdout + result.stderr for result in results)


def test_cli_round_trip_on_azurite_never_shows_the_key(
    workspace: Workspace, azurite: Azurite, tmp_path: Path
) -> None:
    _container(azurite, "landing")
    spec = _yaml(tmp_path / "blob.yml", azurite.datastore("landing", "landing"))
    created = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert created.returncode == 0, created.stderr
    assert "created datastore landing (azure_blob" in created.stdout
    listed = keel_cli(workspace, "datastore", "list")
    shown = keel_cli(workspace, "datastore", "show", "landing")
    as_json = keel_cli(workspace, "datastore", "show", "landing", "-o", "json")
    assert "landing" in listed.stdout and "workspaceblobstore" in listed.stdout
    assert "account_key: ********" in shown.stdout
    assert json.loads(as_json.stdout)["credentials"] == {"account_key": "********"}
    with workspace.store.read() as conn:
        stored = " ".join(str(v) for v in conn.exec_driver_sql("SELECT * FROM datastores").one())
    assert azurite.key not in _everything_printed(created, listed, shown, as_json) + stored
    deleted = keel_cli(workspace, "datastore", "delete", "landing")
    assert deleted.returncode == 0 and "deleted datastore landing" in deleted.stdout


def test_cli_wrong_key_is_refused_at_create_naming_the_datastore(
    workspace: Workspace, azurite: Azurite, tmp_path: Path
) -> None:
    _container(azurite, "raw")
    wrong = "V1JPTkc" + "A" * 81
    spec = _yaml(tmp_path / "wrong.yml", azurite.datastore("badkey", "raw", key=wrong))
    result = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert result.returncode == 1
    assert result.stderr.startswith("error: datastore 'badkey': authentication failed")
    assert len(result.stderr.strip().splitlines()) == 1 and wrong not in _everything_printed(result)
    assert [d.name for d in list_datastores(workspace)] == ["workspaceblobstore"]  # nothing recorded


def test_cli_missing_container_is_refused(workspace: Workspace, azurite: Azurite, tmp_path: Path) -> None:
    spec = _yaml(tmp_path / "gone.yml", azurite.datastore("gone", "nosuchcontainer"))
    result = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert result.returncode == 1
    assert "datastore 'gone': its container 'nosuchcontainer' does not exist" in result.stderr


def test_cli_local_datastore_relative_to_its_file_and_duplicates(
    workspace: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "specs" / "share").mkdir(parents=True)
    spec = _yaml(tmp_path / "specs" / "local.yml", {"name": "share", "type": "local", "path": "share"})
    first = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert first.returncode == 0, first.stderr
    assert get_datastore(workspace, "share").settings["path"] == str(tmp_path / "specs" / "share")
    again = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert again.returncode == 1
    assert "a datastore named 'share' already exists" in again.stderr


def test_cli_bad_files_name_the_line_and_field(workspace: Workspace, tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yml"
    unknown.write_text("name: lake\ntype: ftp\n")
    result = keel_cli(workspace, "datastore", "create", "-f", str(unknown))
    assert result.returncode == 1
    assert f"error: {unknown}:2: type: unknown datastore type 'ftp'" in result.stderr
    typo = tmp_path / "typo.yml"
    typo.write_text("name: lake\ntype: azure_blob\naccount_name: a\ncontainer_name: c\nendpont: x\n")
    result = keel_cli(workspace, "datastore", "create", "-f", str(typo))
    assert f"{typo}:5: endpont: unknown field 'endpont' (expected one of: " in result.stderr
    bad_name = tmp_path / "name.yml"
    bad_name.write_text("name: my/lake\ntype: local\npath: .\n")
    result = keel_cli(workspace, "datastore", "create", "-f", str(bad_name))
    assert f"{bad_name}:1: name: a datastore name is letters" in result.stderr


def test_a_credential_in_the_wrong_shape_is_not_echoed(workspace: Workspace, tmp_path: Path) -> None:
    secret = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1wcmludA=="
    spec = tmp_path / "shape.yml"
    spec.write_text(
        f"name: lake\ntype: azure_blob\naccount_name: a\ncontainer_name: c\ncredentials: {secret}\n"
    )
    result = keel_cli(workspace, "datastore", "create", "-f", str(spec))
    assert result.returncode == 1 and f"{spec}:5: credentials:" in result.stderr
    assert secret not in _everything_printed(result)


def test_environment_references_stay_references(
    workspace: Workspace, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    _container(azurite, "raw")
    monkeypatch.setenv("LANDING_KEY", azurite.key)
    document = azurite.datastore("fromenv", "raw", key="${LANDING_KEY}")
    created = create_datastore(workspace, parse_spec(document), verify=True)
    assert created.describe()["credentials"] == {"account_key": "${LANDING_KEY}"}
    with workspace.store.read() as conn:
        stored = conn.exec_driver_sql("SELECT credentials FROM datastores").scalar()
    assert "${LANDING_KEY}" in stored and azurite.key not in stored
    monkeypatch.delenv("LANDING_KEY")
    with pytest.raises(InvalidInput, match=r"refers to \$\{LANDING_KEY\}, which is not set"):
        resolve_location(workspace, "azureml://datastores/fromenv/paths/x")
