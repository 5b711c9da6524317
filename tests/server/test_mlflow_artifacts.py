"""The mlflow-artifacts proxy in-process: round trips, listings, and hostile paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import MlflowApi

pytestmark = pytest.mark.anyio

PROXY = "/api/2.0/mlflow-artifacts/artifacts"


def _root(api: MlflowApi) -> Path:
    return api.workspace.artifacts.local_path("", allow_empty=True)


async def test_files_go_up_come_down_list_and_delete(local_api: MlflowApi) -> None:
    client = local_api.client
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several slices of the streamed upload
    assert (await client.put(f"{PROXY}/0/run/artifacts/model/weights.bin", content=payload)).json() == {}
    await client.put(f"{PROXY}/0/run/artifacts/notes.txt", content=b"hello")
    download = await client.get(f"{PROXY}/0/run/artifacts/model/weights.bin")
    assert download.status_code == 200 and download.content == payload
    listed = (await client.get(PROXY, params={"path": "0/run/artifacts"})).json()
    assert listed == {
        "files": [
            {"path": "model", "is_dir": True},
            {"path": "notes.txt", "is_dir": False, "file_size": 5},
        ]
    }
    a_file = (await client.get(PROXY, params={"path": "0/run/artifacts/notes.txt"})).json()
    assert a_file == {"files": []}
    assert (await client.delete(f"{PROXY}/0/run/artifacts/model")).json() == {}
    missing = await client.get(f"{PROXY}/0/run/artifacts/model/weights.bin")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    leftovers = [p.name for p in _root(local_api).rglob("*") if ".keel-tmp-" in p.name]
    assert leftovers == []


async def test_run_artifacts_are_listed_relative_to_the_run(local_api: MlflowApi) -> None:
    run_id = await local_api.new_run()
    await local_api.client.put(f"{PROXY}/0/{run_id}/artifacts/plots/a.png", content=b"png")
    top = await local_api.get("artifacts/list", {"run_id": run_id})
    assert top["root_uri"] == f"mlflow-artifacts:/0/{run_id}/artifacts"
    assert top["files"] == [{"path": "plots", "is_dir": True}]
    inner = await local_api.get("artifacts/list", {"run_id": run_id, "path": "plots"})
    assert inner["files"] == [{"path": "plots/a.png", "is_dir": False, "file_size": 3}]


HOSTILE = [
    "%2e%2e/escape.txt",
    "%2e%2e%2fescape.txt",
    "a/%2e%2e/%2e%2e/escape.txt",
    "%252e%252e%252fescape.txt",
    "%25252e%25252e/escape.txt",
    "..%5cescape.txt",
    "a%5c..%5c..%5cescape.txt",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "~/escape.txt",
    "C:%5cWindows%5cescape.txt",
    "a%00b.txt",
]


@pytest.mark.parametrize("path", HOSTILE)
async def test_hostile_paths_are_refused_everywhere(local_api: MlflowApi, path: str, tmp_path: Path) -> None:
    client = local_api.client
    for method in ("PUT", "GET", "DELETE"):
        body = b"x" if method == "PUT" else None
        response = await client.request(method, f"{PROXY}/{path}", content=body)
        assert response.status_code == 400, (method, response.text)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    listing = await client.get(PROXY, params={"path": path.replace("%25", "%")})
    assert listing.status_code == 400
    escaped = [p for p in tmp_path.rglob("escape.txt")]
    assert escaped == []


async def test_symlinks_out_of_the_root_are_refused(local_api: MlflowApi, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = _root(local_api)
    root.mkdir(parents=True, exist_ok=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    read = await local_api.client.get(f"{PROXY}/link/secret.txt")
    assert read.status_code == 400 and "secret" not in read.text.replace("secret.txt", "")
    write = await local_api.client.put(f"{PROXY}/link/planted.txt", content=b"x")
    assert write.status_code == 400 and not (outside / "planted.txt").exists()


async def test_a_file_and_a_folder_cannot_share_a_path(local_api: MlflowApi) -> None:
    client = local_api.client
    await client.put(f"{PROXY}/a/b.txt", content=b"x")
    for path in ("a", "a/b.txt/c"):
        clash = await client.put(f"{PROXY}/{path}", content=b"y")
        assert clash.status_code == 400 and clash.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert (await client.get(f"{PROXY}/a/b.txt")).content == b"x"


@pytest.mark.parametrize("path", ["cas/0f/model.pkl", "data/manifests/abc.jsonl"])
async def test_keel_managed_areas_are_read_only_through_the_proxy(local_api: MlflowApi, path: str) -> None:
    stored = _root(local_api) / path
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"registered bytes")
    put = await local_api.client.put(f"{PROXY}/{path}", content=b"tampered")
    deleted = await local_api.client.delete(f"{PROXY}/{path}")
    assert put.status_code == deleted.status_code == 403
    assert "Keel manages that area" in put.json()["message"]
    assert stored.read_bytes() == b"registered bytes"
    assert (await local_api.client.get(f"{PROXY}/{path}")).content == b"registered bytes"
