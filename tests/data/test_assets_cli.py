"""``keel data``: the real command against a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path

from keel.workspace import Workspace
from tests.jobs.conftest import keel_cli


def test_create_list_show_archive_restore_download(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "jan.csv").write_text("carrier,delay\nUA,3\n")
    spec = tmp_path / "data.yml"
    spec.write_text("name: flights\ndescription: monthly\ntype: uri_folder\npath: ./raw\n")
    created = keel_cli(workspace, "data", "create", "-f", str(spec))
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("registered flights:1  (1 file, 19 B; use it as azureml:flights:1)")
    second = keel_cli(
        workspace, "data", "create", "--name", "flights", "--path", "raw", "-v", "2", "-o", "json"
    )
    assert json.loads(second.stdout)["version"] == "2" and json.loads(second.stdout)["created"]
    archived = keel_cli(workspace, "data", "archive", "flights:2")
    assert archived.stdout.strip() == "archived flights:2"
    listed = json.loads(keel_cli(workspace, "data", "list", "--name", "flights", "-o", "json").stdout)
    assert [a["version"] for a in listed] == ["1"]
    shown = keel_cli(workspace, "data", "show", "flights@latest")
    assert "Version      1" in shown.stdout and "Use as       azureml:flights:1" in shown.stdout
    restored = keel_cli(workspace, "data", "restore", "flights")
    assert restored.stdout.strip() == "restored 2 version(s) of flights"
    target = tmp_path / "out"
    downloaded = keel_cli(workspace, "data", "download", "flights", "--download-path", str(target))
    assert downloaded.returncode == 0, downloaded.stderr
    assert (target / "flights" / "jan.csv").read_text() == "carrier,delay\nUA,3\n"


def test_bad_input_is_one_line_and_writes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "data.yml"
    spec.write_text("name: flights\ntype: uri_folder\npath: ./nowhere\n")
    for args, message in [
        (("-f", str(spec)), "error: no file or folder at"),
        (("--name", "x", "--path", "azureml://datastores/lake/paths/a"), "error: no datastore named 'lake'"),
        (("--name", "x", "--path", str(tmp_path / "*.csv")), "error: no files at"),
    ]:
        result = keel_cli(workspace, "data", "create", *args)
        assert result.returncode == 1 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = keel_cli(workspace, "data", "show", "flights:3")
    assert missing.returncode == 1 and "error: no data asset flights:3" in missing.stderr
    with workspace.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM data_assets").scalar() == 0
