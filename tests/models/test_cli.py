"""``keel model`` through the real command: YAML files, aliases, archive, download, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keel.workspace import Workspace
from tests.jobs.conftest import keel_cli

pytestmark = pytest.mark.slow  # each command is a process of its own

MODEL_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: scorer
version: 3
path: ./custom
type: custom_model
description: a threshold scorer
tags:
  team: delays
properties:
  threshold: 0.5
stage: Development
"""


def _ok(workspace: Workspace, *args: str) -> str:
    done = keel_cli(workspace, "model", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _fails(workspace: Workspace, *args: str) -> str:
    done = keel_cli(workspace, "model", *args)
    assert done.returncode == 1, done.stdout
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: "), done.stderr
    return done.stderr


def test_create_from_yaml_then_list_show_update(workspace: Workspace, folder: Path) -> None:
    spec = folder.parent / "model.yml"
    spec.write_text(MODEL_YAML)
    created = json.loads(_ok(workspace, "create", "-f", str(spec), "-o", "json"))
    assert (created["name"], created["version"], created["created"]) == ("scorer", "3", True)
    assert created["properties"] == {"threshold": "0.5", "stage": "Development"}
    assert created["tags"] == {"team": "delays"} and created["type"] == "custom_model"
    assert "already registered, unchanged: model scorer:3" in _ok(workspace, "create", "-f", str(spec))
    overridden = json.loads(_ok(workspace, "create", "-f", str(spec), "--version", "4", "-o", "json"))
    assert overridden["version"] == "4"
    listed = json.loads(_ok(workspace, "list", "--name", "scorer", "-o", "json"))
    assert [v["version"] for v in listed] == ["4", "3"]
    _ok(
        workspace,
        "update",
        "scorer:3",
        "--description",
        "tuned",
        "--tag",
        "stage=prod",
        "--remove-tag",
        "team",
    )
    shown = json.loads(_ok(workspace, "show", "scorer", "--version", "3", "-o", "json"))
    assert (shown["description"], shown["tags"]) == ("tuned", {"stage": "prod"})
    assert "Model scorer:4" in _ok(workspace, "show", "scorer")


def test_flags_aliases_archive_restore_and_download(
    workspace: Workspace, folder: Path, tmp_path: Path
) -> None:
    assert "registered model scorer:1" in _ok(workspace, "create", "--name", "scorer", "--path", str(folder))
    again = _ok(workspace, "create", "--name", "scorer", "--path", str(folder), "--tag", "a=b")
    assert "already registered, unchanged: model scorer:1" in again  # the same files: the same version
    assert "registered model scorer:2" in _ok(
        workspace, "create", "-n", "scorer", "-p", str(folder), "-v", "2"
    )
    _ok(workspace, "alias", "scorer", "champion=1", "challenger=2")
    assert json.loads(_ok(workspace, "alias", "scorer", "-o", "json")) == {"challenger": "2", "champion": "1"}
    champion = json.loads(_ok(workspace, "show", "models:/scorer@champion", "-o", "json"))
    assert (champion["version"], champion["aliases"]) == ("1", ["champion"])
    _ok(workspace, "alias", "scorer", "challenger=")
    _ok(workspace, "alias", "scorer", "--remove", "champion")
    assert json.loads(_ok(workspace, "alias", "scorer", "-o", "json")) == {}
    assert "archived model scorer:2" in _ok(workspace, "archive", "scorer:2")
    assert json.loads(_ok(workspace, "show", "azureml:scorer@latest", "-o", "json"))["version"] == "1"
    assert json.loads(_ok(workspace, "list", "-o", "json"))[0]["version"] == "1"
    _ok(workspace, "restore", "scorer", "--version", "2")
    _ok(workspace, "download", "scorer:1", "--download-path", str(tmp_path / "out"))
    assert (tmp_path / "out" / "scorer" / "weights" / "w.bin").read_bytes() == b"\x00\x01weights"


@pytest.mark.parametrize(
    ("yaml_text", "says"),
    [
        ("name: scorer\npath: ./custom\nflavor: x\n", r"model.yml:3: flavor: unknown field 'flavor'"),
        ("name: scorer\ntype: custom_model\n", r"model.yml:1: 'path' is required"),
        ("name: scorer\npath: ./custom\ntype: onnx_model\n", r"model.yml:3: type: Input should be"),
        (
            "name: scorer\npath: ./custom\ntype: triton_model\n",
            r"model.yml:3: type: triton_model is not supported",
        ),
        ("name: bad name\npath: ./custom\n", r"model.yml:1: name: model name 'bad name' is not valid"),
        ("name: scorer\npath: ./missing\n", r"model.yml:2: path: no model file or folder at"),
        ("name: scorer\npath: ./custom\ntype: mlflow_model\n", r"model.yml:3: type: .* no MLmodel file"),
        ("name: scorer\nname: again\npath: ./custom\n", r"model.yml:2: duplicate key 'name'"),
    ],
)
def test_bad_yaml_names_the_file_line_and_field(
    workspace: Workspace, folder: Path, yaml_text: str, says: str
) -> None:
    spec = folder.parent / "model.yml"
    spec.write_text(yaml_text)
    message = _fails(workspace, "create", "-f", str(spec))
    assert re.search(says, message), message


def test_bad_references_and_missing_things_exit_non_zero(workspace: Workspace, folder: Path) -> None:
    _ok(workspace, "create", "--name", "scorer", "--path", str(folder))
    assert "no model named 'nope'" in _fails(workspace, "show", "nope:1")
    assert "no version 7 of model scorer" in _fails(workspace, "show", "models:/scorer/7")
    assert "has no alias @gold" in _fails(workspace, "show", "azureml:scorer@gold")
    assert "not a model reference" in _fails(workspace, "show", "sc orer")
    assert "no version 9 of model scorer" in _fails(workspace, "alias", "scorer", "gold=9")
    assert "cannot be an alias" in _fails(workspace, "alias", "scorer", "latest=1")
    assert "is not ALIAS=VERSION" in _fails(workspace, "alias", "scorer", "gold")
    assert "no job named 'nojob'" in _fails(workspace, "create", "--name", "m", "--from-job", "nojob")
    assert "give --file, or --name" in _fails(workspace, "create", "--name", "m")
    assert "already exists with a different content" in _fails(
        workspace, "create", "--name", "scorer", "--path", str(folder / "weights"), "--version", "1"
    )
