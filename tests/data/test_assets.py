"""Data assets over real stores: SQLite and PostgreSQL metadata, a local artifact folder."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.data.assets import (
    Request,
    create_from_file,
    download,
    get_asset,
    list_assets,
    materialize,
    register,
    resolve_asset,
    set_archived,
)
from keel.data.datastore_specs import parse_spec
from keel.data.datastores import create_datastore
from keel.data.manifest import Manifest
from keel.errors import Conflict, InvalidInput, NotFound
from keel.jobs.content import DigestCache
from keel.specs.source import SpecError
from keel.store import Store
from keel.workspace import Workspace, WorkspaceConfig


@pytest.fixture
def space(store: Store, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on the ``store`` fixture's database (SQLite, then PostgreSQL)."""
    config = WorkspaceConfig(
        root=tmp_path / "ws", database_url=store.url, artifacts_url=(tmp_path / "artifacts").as_uri()
    )
    yield Workspace(config, _store=store)


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    (folder / "2013").mkdir(parents=True)
    (folder / "2013" / "jan.csv").write_text("carrier,delay\nUA,3\nAA,-3\n")
    (folder / "2013" / "feb.csv").write_text("carrier,delay\nDL,5\n")
    (folder / "README").write_text("monthly flights\n")
    return folder


def _rows(workspace: Workspace) -> int:
    with workspace.store.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM data_assets").scalar_one())


def _cas_folders(workspace: Workspace) -> list[str]:
    cas = workspace.artifacts.local_path("cas", allow_empty=True)
    return sorted(p.name for p in cas.iterdir() if not p.name.startswith(".")) if cas.exists() else []


def test_versions_count_up_and_latest_resolves(space: Workspace, raw: Path) -> None:
    first, created = register(space, Request("flights", str(raw)))
    assert (first.version, created) == ("1", True)
    (raw / "2013" / "mar.csv").write_text("carrier,delay\nB6,1\n")
    second, _ = register(space, Request("flights", str(raw), description="with March"))
    named, _ = register(space, Request("flights", str(raw / "2013"), version="2013.q1"))
    third, _ = register(space, Request("flights", str(raw)))
    assert [second.version, third.version] == ["2", "3"]  # a named version does not break the count
    assert second.digest != first.digest and third.digest == second.digest
    for reference in ("azureml:flights@latest", "flights@latest", "flights"):
        assert resolve_asset(space, reference).version == "3"
    for reference in ("azureml:flights:2013.q1", "flights:2013.q1"):
        assert resolve_asset(space, reference) == named
    assert [a.version for a in list_assets(space, "flights")] == ["3", "2013.q1", "2", "1"]
    assert get_asset(space, "flights", "2").description == "with March"


def test_a_version_is_immutable_unless_identical(space: Workspace, raw: Path) -> None:
    kept, _ = register(space, Request("flights", str(raw), version="1"))
    again, created = register(space, Request("flights", str(raw), version="1"))
    assert again == kept and not created
    (raw / "README").write_text("changed\n")
    with pytest.raises(Conflict, match="flights:1 already exists with a different content"):
        register(space, Request("flights", str(raw), version="1"))
    with pytest.raises(Conflict, match="different type"):
        register(space, Request("flights", str(raw / "README"), type="uri_file", version="1"))
    assert _rows(space) == 1 and len(_cas_folders(space)) == 1  # the refused upload wrote nothing


def test_identical_uploads_share_one_snapshot(space: Workspace, raw: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for file in raw.rglob("*"):
        if file.is_file():
            (copy / file.relative_to(raw)).parent.mkdir(parents=True, exist_ok=True)
            (copy / file.relative_to(raw)).write_bytes(file.read_bytes())
    one, _ = register(space, Request("flights", str(raw)))
    two, _ = register(space, Request("copied", str(copy)))
    assert one.path == two.path == f"azureml://datastores/workspaceblobstore/paths/cas/{one.digest[7:]}"
    assert _cas_folders(space) == [one.digest[7:]]
    assert one.digest == DigestCache(None).digest(raw)  # the digest jobs compute for the same folder


def test_the_manifest_records_sizes_stamps_and_hashes(workspace: Workspace, raw: Path) -> None:
    asset, _ = register(workspace, Request("flights", str(raw)))
    manifest = asset.manifest(workspace)
    assert manifest.root == asset.path and manifest.digest == asset.digest
    assert [e.path for e in manifest.entries] == ["2013/feb.csv", "2013/jan.csv", "README"]
    for entry in manifest.entries:
        data = (raw / entry.path).read_bytes()
        assert entry.size == len(data)
        assert entry.hash == "sha256:" + hashlib.sha256(data).hexdigest()
        assert entry.hash_from == "content" and entry.modified is not None
    assert (asset.size, asset.file_count) == (sum(e.size for e in manifest.entries), 3)
    stored = workspace.artifacts.read_bytes(asset.manifest_uri or "")
    assert Manifest.from_bytes(stored) == manifest
    assert stored.splitlines()[0].startswith(b'{"bytes": ')


def test_a_file_asset_keeps_its_name(workspace: Workspace, raw: Path, tmp_path: Path) -> None:
    asset, _ = register(workspace, Request("january", str(raw / "2013" / "jan.csv"), type="uri_file"))
    assert asset.path.endswith("/jan.csv") and asset.file_count == 1
    assert asset.profile is not None and get_asset(workspace, "january").profile == asset.profile
    assert materialize(workspace, asset, tmp_path / "cache").read_text() == "carrier,delay\nUA,3\nAA,-3\n"
    written = download(workspace, "january:1", tmp_path / "out")
    assert written == tmp_path / "out" / "january" / "jan.csv" and written.read_text().startswith("carrier")


def test_archived_versions_hide_from_lists_and_latest(space: Workspace, raw: Path) -> None:
    register(space, Request("flights", str(raw)))
    (raw / "README").write_text("v2\n")
    register(space, Request("flights", str(raw)))
    assert set_archived(space, "flights", "2", archived=True) == 1
    assert resolve_asset(space, "flights@latest").version == "1"
    assert resolve_asset(space, "flights:2").archived  # still there by explicit version
    assert [a.version for a in list_assets(space, "flights")] == ["1"]
    assert len(list_assets(space, "flights", include_archived=True)) == 2
    assert set_archived(space, "flights", None, archived=True) == 2
    assert list_assets(space) == []
    with pytest.raises(NotFound, match="no data asset flights \\(no active version\\)"):
        resolve_asset(space, "flights@latest")
    set_archived(space, "flights", None, archived=False)
    assert resolve_asset(space, "flights@latest").version == "2"


def test_download_checks_every_file_against_the_manifest(
    workspace: Workspace, raw: Path, tmp_path: Path
) -> None:
    asset, _ = register(workspace, Request("flights", str(raw)))
    target = download(workspace, "azureml:flights:1", tmp_path / "out")
    assert (target / "2013" / "jan.csv").read_bytes() == (raw / "2013" / "jan.csv").read_bytes()
    stored = Path(asset.location(workspace).path) / "2013" / "feb.csv"
    stored.write_text("carrier,delay\nDL,6\n")  # one byte flipped in the store
    with pytest.raises(Conflict, match=r"feb\.csv no longer matches the version's manifest"):
        download(workspace, "flights:1", tmp_path / "again")
    assert not (tmp_path / "again" / "flights" / "2013" / "feb.csv").exists()


def test_a_local_datastore_path_is_a_reference(workspace: Workspace, raw: Path, tmp_path: Path) -> None:
    create_datastore(workspace, parse_spec({"type": "local", "name": "share", "path": str(raw)}))
    asset, _ = register(workspace, Request("jan", "azureml://datastores/share/paths/2013/", version="1"))
    assert asset.path == "azureml://datastores/share/paths/2013" and _cas_folders(workspace) == []
    assert materialize(workspace, asset, tmp_path / "cache") == raw / "2013"  # used in place
    (raw / "2013" / "jan.csv").write_text("carrier,delay\nUA,4\n")
    with pytest.raises(Conflict, match="changed since it was registered"):
        materialize(workspace, asset, tmp_path / "cache")


def test_a_pattern_registers_what_it_matches(workspace: Workspace, raw: Path) -> None:
    asset, _ = register(workspace, Request("csvs", str(raw / "2013" / "*.csv")))
    assert [e.path for e in asset.manifest(workspace).entries] == ["feb.csv", "jan.csv"]


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (Request("x", "missing"), NotFound, "no file or folder at"),
        (Request("x", "raw/*.parquet"), NotFound, "no files at"),
        (Request("x", "azureml://datastores/nowhere/paths/a"), NotFound, "no datastore named 'nowhere'"),
        (Request("x", "raw", type="uri_file"), InvalidInput, "is a folder, but the type is uri_file"),
        (Request("x", "raw/README", type="uri_folder"), InvalidInput, "is a file; a uri_folder"),
        (Request("x", "raw", type="mltable"), InvalidInput, "holds no MLTable file"),
        (Request("x", "raw", type="csv"), InvalidInput, "unknown data type 'csv'"),
        (Request("x", "azureml:other:1"), InvalidInput, "is a data asset reference"),
        (Request("bad name", "raw"), InvalidInput, "data asset name 'bad name' is not valid"),
        (Request("x", "raw", version="latest"), InvalidInput, "'latest' is a label"),
        (Request("x", "raw/../../etc"), NotFound, "no file or folder"),
        (Request("x", "azureml://datastores/workspaceblobstore/paths/../x"), InvalidInput, "'..'"),
    ],
)
def test_bad_requests_say_why_and_write_nothing(
    workspace: Workspace, raw: Path, request_: Request, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        register(workspace, request_, base=raw.parent)
    assert _rows(workspace) == 0 and _cas_folders(workspace) == []
    assert not workspace.artifacts.local_path("data", allow_empty=False).exists()


def test_a_data_file_is_read_like_azure_and_its_errors_are_located(workspace: Workspace, raw: Path) -> None:
    spec = raw.parent / "data.yml"
    spec.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json\n"
        "name: flights\nversion: 4\ndescription: monthly\ntags: {source: faa}\n"
        "type: uri_folder\npath: ./raw\n"
    )
    asset, created = create_from_file(workspace, spec)
    assert (asset.name, asset.version, asset.tags, created) == ("flights", "4", {"source": "faa"}, True)
    overridden, _ = create_from_file(workspace, spec, overrides={"version": "5", "name": None})
    assert (overridden.version, overridden.digest) == ("5", asset.digest)
    spec.write_text("name: flights\ntype: csv\npath: ./raw\n")
    with pytest.raises(SpecError, match=r"data.yml:2: type: Input should be 'uri_file'"):
        create_from_file(workspace, spec)
    spec.write_text("name: flights\nversion: latest\npath: ./raw\n")
    with pytest.raises(SpecError, match=r"data.yml:2: version: data asset version 'latest'"):
        create_from_file(workspace, spec)
    spec.write_text("name: flights\npath: ./raw\ndatastore: x\n")
    with pytest.raises(SpecError, match=r"data.yml:3: datastore: unknown field 'datastore'"):
        create_from_file(workspace, spec)
    assert _rows(workspace) == 2


def test_the_sdk_functions_use_the_sdk_workspace(sdk: Workspace, raw: Path, tmp_path: Path) -> None:
    import keel.data

    asset = keel.data.create_asset("flights", raw, version=1, tags={"source": "faa"})
    assert keel.data.get_asset("flights@latest") == asset and asset.tags == {"source": "faa"}
    assert keel.data.get_asset("azureml:flights:1", workspace=sdk.config.root) == asset
    assert [a.version for a in keel.data.list_assets("flights")] == ["1"]
    assert keel.data.archive_asset("flights:1") == 1 and keel.data.list_assets() == []
    assert keel.data.restore_asset("flights") == 1
    assert (keel.data.download_asset("flights:1", tmp_path / "out") / "README").is_file()
    assert sorted(keel.data.__all__) == sorted(keel.data._EXPORTS)


def test_another_record_can_commit_with_the_version(space: Workspace, raw: Path) -> None:
    from sqlalchemy import insert

    from keel.store.schema import copy_watermarks

    def advance(conn: object, version: str) -> None:
        row = {"key": "landing", "watermark": "2013-02", "asset_version": version, "updated_at": 1}
        conn.execute(insert(copy_watermarks).values(**row))  # type: ignore[attr-defined]

    def fail(conn: object, version: str) -> None:
        raise RuntimeError("crashed before commit")

    register(space, Request("flights", str(raw), in_transaction=advance))
    (raw / "README").write_text("v2\n")
    with pytest.raises(RuntimeError):
        register(space, Request("flights", str(raw), in_transaction=fail))
    with space.store.read() as conn:
        marks = conn.exec_driver_sql("SELECT asset_version FROM copy_watermarks").scalars().all()
    assert marks == ["1"] and _rows(space) == 1  # the failed version left no row behind
