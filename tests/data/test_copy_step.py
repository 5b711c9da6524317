"""``type: data_transfer`` (``task: copy_data``) as a pipeline step feeding a command step."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.data.test_copy_local import FLIGHTS, contents, keel, make_tree


def _pipeline(folder: Path, land: Mapping[str, object]) -> Path:
    document = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
        "type": "pipeline",
        "jobs": {
            "land": land,
            "count": {
                "type": "command",
                "command": "find ${{inputs.data}} -type f | sort | sed 's|^${{inputs.data}}/||' > "
                "${{outputs.listing}}/files.txt",
                "inputs": {"data": "${{parent.jobs.land.outputs.landed}}"},
                "outputs": {"listing": {"type": "uri_folder"}},
            },
        },
    }
    path = folder / "pipeline.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_copy_step_feeds_the_next_step(workspace: Workspace, tmp_path: Path) -> None:
    make_tree(tmp_path / "raw", FLIGHTS)
    land = {
        "type": "data_transfer",
        "task": "copy_data",
        "inputs": {"folder1": {"type": "uri_folder", "path": "./raw"}},
        "outputs": {"landed": {"type": "uri_folder"}},
        "copy": {"include": ["*.csv"]},
    }
    done = keel(workspace, "job", "create", "-f", str(_pipeline(tmp_path, land)), "--wait", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    root = json.loads(done.stdout)["name"]
    children = _children(workspace, root)
    listing = _output_folder(workspace, children["count"]) / "files.txt"
    assert listing.read_text().split() == ["2013/feb.csv", "2013/jan.csv"]
    copied = get_job(workspace.store, children["land"])
    assert copied.type == "data_transfer" and copied.metrics["files_copied"].last == 2
    assert workspace.artifacts.exists(f"{copied.artifact_location}/copy/manifest.jsonl")


def test_a_copy_step_writes_to_the_outputs_path(workspace: Workspace, tmp_path: Path) -> None:
    make_tree(tmp_path / "raw", FLIGHTS)
    land = {
        "type": "data_transfer",
        "task": "copy_data",
        "data_copy_mode": "merge_with_overwrite",
        "inputs": {"folder1": {"type": "uri_folder", "path": "./raw"}},
        "outputs": {"landed": {"type": "uri_folder", "path": str(tmp_path / "lake")}},
    }
    done = keel(workspace, "job", "create", "-f", str(_pipeline(tmp_path, land)), "--wait", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert contents(tmp_path / "lake") == FLIGHTS
    root = json.loads(done.stdout)["name"]
    listing = _output_folder(workspace, _children(workspace, root)["count"]) / "files.txt"
    assert sorted(listing.read_text().split()) == sorted(FLIGHTS)


def test_a_failing_copy_step_stops_the_pipeline(workspace: Workspace, tmp_path: Path) -> None:
    land = {
        "type": "data_transfer",
        "task": "copy_data",
        "inputs": {"folder1": {"type": "uri_folder", "path": "./raw"}},
        "outputs": {"landed": {"type": "uri_folder", "path": str(tmp_path / "lake")}},
        "copy": {"include": ["*.parquet"]},
    }
    make_tree(tmp_path / "raw", FLIGHTS)
    done = keel(workspace, "job", "create", "-f", str(_pipeline(tmp_path, land)), "--wait", "-o", "json")
    assert done.returncode == 1
    root = json.loads(done.stdout)["name"]
    land_job = get_job(workspace.store, _children(workspace, root)["land"])
    assert land_job.status.value == "failed" and "no file matches" in (land_job.status_reason or "")
    assert not (tmp_path / "lake").exists()


def _children(workspace: Workspace, root: str) -> dict[str, str]:
    with workspace.store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT step_name, name FROM jobs WHERE parent_id = (SELECT id FROM jobs WHERE name = ?)", (root,)
        ).all()
    return {step: name for step, name in rows}


def _output_folder(workspace: Workspace, job_name: str) -> Path:
    with workspace.store.read() as conn:
        uri = conn.exec_driver_sql(
            "SELECT o.uri FROM job_outputs o JOIN jobs j ON j.id = o.job_id WHERE j.name = ?", (job_name,)
        ).scalar_one()
    return workspace.artifacts.local_path(uri)
