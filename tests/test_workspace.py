"""Which workspace applies: argument, environment, keel.yaml, or ./.keel."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InvalidInput
from keel.workspace import Workspace, resolve_workspace


def test_default_is_dot_keel_in_the_current_directory(tmp_path: Path) -> None:
    config = resolve_workspace(environ={}, cwd=tmp_path)
    assert config.root == tmp_path.resolve() / ".keel"
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / '.keel' / 'keel.db'}"
    assert config.artifacts_url == (tmp_path.resolve() / ".keel" / "artifacts").as_uri()
    assert config.is_embedded and config.source == "default"


def test_an_argument_beats_the_environment(tmp_path: Path) -> None:
    config = resolve_workspace("here", environ={"KEEL_WORKSPACE": "/elsewhere"}, cwd=tmp_path)
    assert config.root == tmp_path.resolve() / "here"
    config = resolve_workspace(environ={"KEEL_WORKSPACE": str(tmp_path / "env")}, cwd=tmp_path)
    assert config.root == tmp_path / "env" and config.source == "KEEL_WORKSPACE"


def test_keel_yaml_is_found_from_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "keel.yaml").write_text("workspace: ws\nheartbeat_timeout_seconds: 5\n")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    config = resolve_workspace(environ={}, cwd=tmp_path / "src" / "deep")
    assert config.root == tmp_path.resolve() / "ws"
    assert config.heartbeat_timeout_seconds == 5.0


def test_team_urls_come_from_keel_yaml_with_secrets_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "keel.yaml").write_text(
        "database_url: postgresql://keel:${PGPASS}@db/keel\nartifacts_url: s3://bucket/keel\n"
    )
    config = resolve_workspace(environ={"PGPASS": "pw"}, cwd=tmp_path)
    assert config.database_url == "postgresql://keel:pw@db/keel"
    assert config.artifacts_url == "s3://bucket/keel" and not config.is_embedded
    override = resolve_workspace(
        environ={"PGPASS": "pw", "KEEL_DATABASE_URL": "sqlite:///x.db"}, cwd=tmp_path
    )
    assert override.database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("workspace: ws\nheartbeat_timeout_seconds: [unclosed\n", "keel.yaml:3: not valid YAML"),
        ("- a list\n", "expected a mapping"),
        ("colour: blue\n", "unknown setting 'colour'"),
        ("database_url: ${MISSING}\n", "refers to ${MISSING}, which is not set"),
    ],
)
def test_bad_keel_yaml_is_explained(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "keel.yaml").write_text(content)
    with pytest.raises(InvalidInput) as caught:
        resolve_workspace(environ={}, cwd=tmp_path)
    assert message in str(caught.value)


def test_opening_creates_the_folder_database_and_artifacts_lazily(tmp_path: Path) -> None:
    workspace = Workspace(resolve_workspace(tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()
    workspace.store  # noqa: B018
    assert (tmp_path / "ws" / "keel.db").exists()
    workspace.artifacts.write_bytes("x.txt", b"1")
    assert (tmp_path / "ws" / "artifacts" / "x.txt").read_bytes() == b"1"
    workspace.close()
