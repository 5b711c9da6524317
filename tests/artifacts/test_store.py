"""The artifact store: atomic writes, listing, download, on a local root and over fsspec."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.artifacts import ArtifactStore
from keel.errors import NotFound


@pytest.fixture(params=["local", "fsspec-memory"])
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore((tmp_path / "artifacts").as_uri())
    import fsspec

    fsspec.filesystem("memory").store.clear()
    return ArtifactStore(f"memory://keel-test-{tmp_path.name}")


def test_write_read_list_and_delete(artifacts: ArtifactStore) -> None:
    artifacts.write_bytes("run/a.txt", b"alpha")
    artifacts.write_bytes("run/sub/b.bin", b"\x00\x01")
    assert artifacts.read_bytes("run/a.txt") == b"alpha"
    entries = artifacts.list_entries("run")
    assert [(e.path, e.is_dir) for e in entries] == [("run/a.txt", False), ("run/sub", True)]
    assert entries[0].size == 5
    assert artifacts.exists("run/sub/b.bin")
    artifacts.delete("run/sub")
    assert not artifacts.exists("run/sub/b.bin")
    assert artifacts.list_entries("nothing-here") == []


def test_reading_a_missing_artifact_names_it(artifacts: ArtifactStore) -> None:
    with pytest.raises(NotFound, match=r"missing\.txt"):
        artifacts.read_bytes("missing.txt")


def test_put_folder_and_download_round_trip(artifacts: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "one.txt").write_text("1")
    (source / "nested" / "two.txt").write_text("2")
    assert artifacts.put_folder(source, "model") == 2
    target = artifacts.download("model", tmp_path / "out")
    assert (target / "one.txt").read_text() == "1"
    assert (target / "nested" / "two.txt").read_text() == "2"


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    artifacts = ArtifactStore((tmp_path / "root").as_uri())
    artifacts.write_bytes("kept.txt", b"old")
    with pytest.raises(RuntimeError), artifacts.open_write("kept.txt") as handle:
        handle.write(b"half of the new")
        raise RuntimeError("writer died")
    assert artifacts.read_bytes("kept.txt") == b"old"
    leftovers = [p.name for p in (tmp_path / "root").iterdir()]
    assert leftovers == ["kept.txt"]


def test_urls_for_relative_paths(tmp_path: Path) -> None:
    artifacts = ArtifactStore((tmp_path / "root").as_uri())
    assert artifacts.url_for("a/b.txt") == (tmp_path / "root").as_uri() + "/a/b.txt"
    assert artifacts.is_local
