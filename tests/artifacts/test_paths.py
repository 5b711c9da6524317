"""The one path resolver refuses every way out of the root (the hostile-path table)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keel.artifacts import ArtifactStore, UnsafePath, contain, safe_relative_path

HOSTILE = [
    ("..", "'..'"),
    ("../secret", "'..'"),
    ("a/../../etc/passwd", "'..'"),
    ("a/b/../../..", "'..'"),
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("~/.ssh/id_rsa", "absolute"),
    ("C:/Windows/system.ini", "absolute"),
    ("c:relative", "absolute"),
    ("%2e%2e%2fsecret", "'..'"),
    ("%2E%2E/secret", "'..'"),
    ("a/%2e%2e/%2e%2e/x", "'..'"),
    ("%2fetc%2fpasswd", "absolute"),
    ("%252e%252e%252fsecret", "'..'"),
    ("%25252e%25252e/x", "'..'"),
    ("..\\windows", "backslash"),
    ("a\\b", "backslash"),
    ("%5c..%5cx", "backslash"),
    ("a\x00b", "NUL"),
    ("file.txt%00.png", "NUL"),
    ("line\nbreak", "control"),
    ("", "empty"),
    ("./", "empty"),
]


@pytest.mark.parametrize(("path", "reason"), HOSTILE)
def test_hostile_paths_are_refused_with_a_clear_reason(path: str, reason: str) -> None:
    with pytest.raises(UnsafePath) as caught:
        safe_relative_path(path)
    assert reason in caught.value.message
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("model.pkl", "model.pkl"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("./a//b/", "a/b"),
        ("dots..in..name.txt", "dots..in..name.txt"),
        ("with space/ünïcode.csv", "with space/ünïcode.csv"),
        ("100%.txt", "100%.txt"),
    ],
)
def test_ordinary_paths_are_cleaned_not_refused(path: str, clean: str) -> None:
    assert safe_relative_path(path) == clean


def test_the_root_itself_is_allowed_only_when_asked() -> None:
    assert safe_relative_path("", allow_empty=True) == ""
    with pytest.raises(UnsafePath):
        safe_relative_path("")


def test_non_strings_are_refused() -> None:
    with pytest.raises(UnsafePath):
        safe_relative_path(b"bytes")  # type: ignore[arg-type]


def test_a_symlink_leading_outside_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, root / "escape")
    with pytest.raises(UnsafePath, match="symbolic link"):
        contain(root, "escape/secret.txt")
    store = ArtifactStore(root.as_uri())
    with pytest.raises(UnsafePath):
        store.read_bytes("escape/secret.txt")
    with pytest.raises(UnsafePath):
        store.write_bytes("escape/planted.txt", b"x")
    assert not (outside / "planted.txt").exists()


def test_a_symlink_inside_the_root_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_text("ok")
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert contain(tmp_path, "alias/f.txt") == (tmp_path / "real" / "f.txt").resolve()
