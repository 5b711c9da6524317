"""`keel job` and `keel component` as a person types them: real processes, real exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from keel.workspace import Workspace
from tests.jobs.conftest import keel_cli


def test_create_streams_logs_and_exits_zero(workspace: Workspace, project: Path) -> None:
    result = keel_cli(workspace, "job", "create", "-f", str(project / "pipeline.yml"), "--stream")
    assert result.returncode == 0, result.stderr
    assert "[prep] kept 3 rows" in result.stdout
    assert "[train] Completed" in result.stdout
    assert "notice: compute azureml:cpu-cluster runs on the local executor" in result.stderr
    again = keel_cli(workspace, "job", "create", "-f", str(project / "pipeline.yml"), "--stream")
    assert "(reused from" in again.stdout


def test_create_in_the_background_then_stream_show_and_download(
    workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    submitted = keel_cli(workspace, "job", "create", "-f", str(project / "pipeline.yml"), "-o", "json")
    assert submitted.returncode == 0, submitted.stderr
    name = json.loads(submitted.stdout)["name"]
    streamed = keel_cli(workspace, "job", "stream", name)
    assert streamed.returncode == 0 and f"job {name}: Completed" in streamed.stdout + streamed.stderr
    shown = json.loads(keel_cli(workspace, "job", "show", name, "-o", "json").stdout)
    assert shown["status"] == "completed" and len(shown["children"]) == 2 and "trained" in shown["outputs"]
    table = keel_cli(workspace, "job", "show", name).stdout
    assert "Steps" in table and "prep" in table and "Outputs" in table
    downloaded = keel_cli(workspace, "job", "download", name, "--download-path", str(tmp_path / "out"))
    assert downloaded.returncode == 0, downloaded.stderr
    assert (
        json.loads((tmp_path / "out" / "named-outputs" / "trained" / "model.json").read_text())["UA"] == 26.0
    )


def test_set_overrides_nested_paths(workspace: Workspace, project: Path) -> None:
    result = keel_cli(
        workspace, "job", "create", "-f", str(project / "pipeline.yml"), "--wait",
        "--set", "jobs.prep.inputs.min_delay=10", "--set", "display_name=tuned", "--name", "tuned_run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(keel_cli(workspace, "job", "show", "tuned_run", "-o", "json").stdout)
    assert shown["display_name"] == "tuned"


def test_a_failing_command_exits_one(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "fail.yml"
    spec.write_text("command: echo going down && exit 4\n")
    result = keel_cli(workspace, "job", "create", "-f", str(spec), "--wait")
    assert result.returncode == 1
    assert "the command exited with code 4" in result.stderr


def test_cancel_from_another_process_exits_two(workspace: Workspace, tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "sleepy.yml"
    spec.write_text("command: sleep 60\n")
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace.config.root)]
    waiting = subprocess.Popen([*command, "job", "create", "-f", str(spec), "--wait", "--name", "sleepy"])
    deadline = time.monotonic() + 30
    while keel_cli(workspace, "job", "show", "sleepy", "-o", "json").returncode != 0 or (
        json.loads(keel_cli(workspace, "job", "show", "sleepy", "-o", "json").stdout)["status"] != "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert keel_cli(workspace, "job", "cancel", "sleepy").returncode == 0
    assert waiting.wait(timeout=30) == 2


def test_components_register_list_and_show(workspace: Workspace, project: Path) -> None:
    created = keel_cli(workspace, "component", "create", "-f", str(project / "components" / "train.yml"))
    assert created.returncode == 0 and "registered train_delays:1" in created.stdout
    listed = json.loads(keel_cli(workspace, "component", "list", "-o", "json").stdout)
    assert [(c["name"], c["version"]) for c in listed] == [("train_delays", "1")]
    shown = keel_cli(workspace, "component", "show", "train_delays@latest").stdout
    assert "epochs" in shown and "optional" in shown
    edited = project / "components" / "train.yml"
    edited.write_text(edited.read_text().replace("default: 0.1", "default: 0.2"))
    conflict = keel_cli(workspace, "component", "create", "-f", str(edited))
    assert conflict.returncode == 1 and "already exists with different content" in conflict.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("jobs.train.inputs.lr=high", "pipeline.yml:27: jobs.train.inputs.lr: expected a number, got 'high'"),
        (
            "jobs.train.inputs.data=${{parent.jobs.prep.outputs.cleaned}}",
            "step 'prep' has no output 'cleaned'",
        ),
        (
            "jobs.prep.inputs.raw=${{parent.inputs.nothing}}",
            "${{parent.inputs.nothing}} names no pipeline input",
        ),
        ("jobs.prep.inputs.raw=${{parent.jobs.train.outputs.model}}", "steps form a cycle"),
        ("jobs.train.component=./components/missing.yml", "the component file"),
        ("jobs.prep.command=python prep.py --out ${{outputs.nope}}", "${{outputs.nope}} names no output"),
        ("jobs.train.inputs.data=null", "jobs.train.inputs.data: expected a path"),
        ("jobs.train.colour=blue", "unknown field 'colour'"),
        ("type=spaceship", "unknown job type 'spaceship'"),
    ],
)
def test_bad_specs_say_file_line_and_field_and_run_nothing(
    workspace: Workspace, project: Path, override: str, message: str
) -> None:
    result = keel_cli(
        workspace, "job", "create", "-f", str(project / "pipeline.yml"), "--set", override, "--wait"
    )
    assert result.returncode == 1, result.stdout
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    listed = json.loads(keel_cli(workspace, "job", "list", "-o", "json").stdout)
    assert listed == []  # nothing was recorded, nothing ran


def test_a_missing_required_input_is_named(workspace: Workspace, project: Path, tmp_path: Path) -> None:
    spec = tmp_path / "missing.yml"
    component = project / "components" / "train.yml"
    spec.write_text(f"type: pipeline\njobs:\n  train:\n    component: {component}\n    inputs: {{lr: 0.1}}\n")
    result = keel_cli(workspace, "job", "create", "-f", str(spec))
    assert result.returncode == 1
    assert "missing.yml:3: jobs.train: required input 'data' of train_delays is not given" in result.stderr


def test_usage_errors_exit_two(workspace: Workspace) -> None:
    result = keel_cli(workspace, "job", "create")
    assert result.returncode == 2 and "--file" in result.stderr
