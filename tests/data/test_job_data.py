"""Data assets and datastores in real jobs: inputs by reference, reuse by content, outputs as versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel.data.assets import Request, get_asset, register
from keel.data.datastore_specs import parse_spec
from keel.data.datastores import create_datastore
from keel.data.lineage import lineage
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace
from tests.azurite import Azurite
from tests.jobs.conftest import executions, keel_cli, run_file, steps_of

COPY_JOB = """\
command: cat ${{inputs.data}}/jan.csv > ${{outputs.out}}/copy.csv && echo copy >> "$KEEL_TEST_LEDGER"
inputs:
  data: {type: uri_folder, path: REFERENCE}
outputs:
  out: {type: uri_folder}
experiment_name: data
"""

INGEST_JOB = """\
command: cp ${{inputs.source}}/*.csv ${{outputs.landed}}/
inputs:
  source: {type: uri_folder, path: ./raw}
outputs:
  landed: {type: uri_folder, name: flights}
experiment_name: data
"""

PIPELINE = """\
type: pipeline
experiment_name: data
inputs:
  raw: {type: uri_folder, path: azureml:flights@latest}
outputs:
  final: {type: uri_folder, name: summary, version: 7}
jobs:
  clean:
    type: command
    command: grep -v AA ${{inputs.raw}}/jan.csv > ${{outputs.cleaned}}/jan.csv
    inputs: {raw: "${{parent.inputs.raw}}"}
    outputs:
      cleaned: {type: uri_folder, name: cleaned}
  count:
    type: command
    command: wc -l < ${{inputs.data}}/jan.csv > ${{outputs.counted}}/count.txt
    inputs: {data: "${{parent.jobs.clean.outputs.cleaned}}"}
    outputs:
      counted: "${{parent.outputs.final}}"
"""


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file each step appends to, to count real executions."""
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("KEEL_TEST_LEDGER", str(path))
    return path


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "jan.csv").write_text("carrier,delay\nUA,3\nAA,-3\n")
    return folder


def _job_file(tmp_path: Path, text: str, **replacements: str) -> Path:
    for key, value in replacements.items():
        text = text.replace(key, value)
    path = tmp_path / f"job{len(list(tmp_path.glob('job*.yml')))}.yml"
    path.write_text(text)
    return path


def test_an_asset_input_is_read_and_reused_by_content(
    workspace: Workspace, raw: Path, tmp_path: Path, ledger: Path
) -> None:
    first_version, _ = register(workspace, Request("flights", str(raw)))
    job = _job_file(tmp_path, COPY_JOB, REFERENCE="azureml:flights@latest")
    first = run_file(workspace, job)
    assert first.status == JobStatus.COMPLETED, first.status_reason
    data = next(item for item in first.inputs if item.name == "data")
    assert (data.uri, data.digest) == ("azureml:flights:1", first_version.digest)
    assert run_file(workspace, job).reused_from == first.name
    register(workspace, Request("flights", str(raw)))  # version 2, the same content
    same = run_file(workspace, job)
    assert same.reused_from is not None and same.inputs[0].uri == "azureml:flights:2"
    (raw / "jan.csv").write_text("carrier,delay\nB6,1\n")
    register(workspace, Request("flights", str(raw)))  # version 3, new content
    changed = run_file(workspace, job)
    assert changed.status == JobStatus.COMPLETED and changed.reused_from is None
    assert "no earlier run" in (changed.reuse_note or "")
    assert executions(ledger) == ["copy", "copy"]


def test_bad_asset_inputs_fail_the_step_with_the_reason(
    workspace: Workspace, raw: Path, tmp_path: Path, ledger: Path
) -> None:
    missing = run_file(workspace, _job_file(tmp_path, COPY_JOB, REFERENCE="azureml:nope:1"))
    assert missing.status == JobStatus.FAILED
    assert "inputs: no data asset nope:1" in (missing.status_reason or "")
    register(workspace, Request("jan", str(raw / "jan.csv"), type="uri_file"))
    mismatched = run_file(workspace, _job_file(tmp_path, COPY_JOB, REFERENCE="azureml:jan:1"))
    assert "azureml:jan:1 is a uri_file, but the input is a uri_folder" in (mismatched.status_reason or "")
    assert executions(ledger) == []


def test_outputs_with_a_name_become_versions_with_lineage(
    workspace: Workspace, raw: Path, tmp_path: Path
) -> None:
    ingest = run_file(workspace, _job_file(tmp_path, INGEST_JOB))
    assert ingest.status == JobStatus.COMPLETED, ingest.status_reason
    flights = get_asset(workspace, "flights")
    assert (flights.version, flights.job_name) == ("1", ingest.name)
    assert ingest.tags["keel.data_asset.landed"] == "flights:1"
    pipeline = run_file(workspace, _job_file(tmp_path, PIPELINE))
    assert pipeline.status == JobStatus.COMPLETED, pipeline.status_reason
    steps = steps_of(workspace, pipeline)
    cleaned, summary = get_asset(workspace, "cleaned"), get_asset(workspace, "summary", "7")
    assert (cleaned.version, cleaned.job_name) == ("1", steps["clean"].name)
    assert summary.job_name == pipeline.name and summary.type == "uri_folder"
    assert (Path(cleaned.location(workspace).path) / "jan.csv").read_text() == "carrier,delay\nUA,3\n"
    hops = [(h.depth, h.job, h.input, h.source, h.produced_by) for h in lineage(workspace, cleaned)]
    assert hops == [
        (0, steps["clean"].name, "raw", "azureml:flights:1", ingest.name),
        (1, ingest.name, "source", str(raw), None),
    ]
    again = run_file(workspace, _job_file(tmp_path, PIPELINE))  # reused: no new versions
    assert again.status == JobStatus.COMPLETED, again.status_reason
    assert get_asset(workspace, "cleaned").version == "1"
    _check_cli(workspace, steps["clean"].name, ingest.name)


def _check_cli(workspace: Workspace, clean: str, ingest: str) -> None:
    shown = keel_cli(workspace, "data", "show", "cleaned@latest")
    assert shown.returncode == 0, shown.stderr
    assert f"job {clean}" in shown.stdout and "Lineage" in shown.stdout
    assert "azureml:flights:1" in shown.stdout and ingest in shown.stdout
    listed = keel_cli(workspace, "data", "list")
    assert all(name in listed.stdout for name in ("cleaned", "flights", "summary"))


def test_an_output_version_taken_by_other_content_fails_the_job(
    workspace: Workspace, raw: Path, tmp_path: Path
) -> None:
    register(workspace, Request("flights", str(raw)))
    register(workspace, Request("summary", str(raw), version="7"))
    pipeline = run_file(workspace, _job_file(tmp_path, PIPELINE))
    assert pipeline.status == JobStatus.FAILED
    assert "registering output 'final' as data asset 'summary'" in (pipeline.status_reason or "")
    assert "summary:7 already exists with a different content" in (pipeline.status_reason or "")


def test_paths_on_registered_datastores_are_inputs(
    workspace: Workspace, raw: Path, tmp_path: Path, azurite: Azurite, ledger: Path
) -> None:
    create_datastore(workspace, parse_spec({"type": "local", "name": "share", "path": str(raw)}))
    local = run_file(workspace, _job_file(tmp_path, COPY_JOB, REFERENCE="azureml://datastores/share/paths/"))
    assert local.status == JobStatus.COMPLETED, local.status_reason
    assert local.inputs[0].digest and local.inputs[0].uri == "azureml://datastores/share/paths/"
    container = _blob_container(azurite)
    container.upload_blob("monthly/jan.csv", b"carrier,delay\nUA,3\n", overwrite=True)
    create_datastore(workspace, parse_spec(azurite.datastore("lake", container.container_name)))
    reference = "azureml://datastores/lake/paths/monthly"
    remote = run_file(workspace, _job_file(tmp_path, COPY_JOB, REFERENCE=reference))
    assert remote.status == JobStatus.COMPLETED, remote.status_reason
    assert run_file(workspace, _job_file(tmp_path, COPY_JOB, REFERENCE=reference)).reused_from == remote.name
    assert executions(ledger) == ["copy", "copy"]


def _blob_container(azurite: Azurite) -> Any:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account};AccountKey={azurite.key};"
        f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};"
    ).get_container_client("jobinputs")
    if not client.exists():
        client.create_container()
    return client


def test_a_model_input_is_never_taken_for_a_data_asset_of_the_same_name(
    workspace: Workspace, raw: Path, tmp_path: Path
) -> None:
    from keel.data.lineage import job_lineage
    from keel.tracking.entities import JobInput
    from keel.tracking.experiments import get_or_create_experiment
    from keel.tracking.jobs import create_job, log_inputs

    ingest = run_file(workspace, _job_file(tmp_path, INGEST_JOB))  # produces the data asset flights:1
    assert ingest.status == JobStatus.COMPLETED, ingest.status_reason
    scoring = create_job(workspace.store, get_or_create_experiment(workspace.store, "data"))
    log_inputs(
        workspace.store,
        scoring.id,
        [
            JobInput(name="input", type="uri_folder", uri="azureml:flights:1"),
            JobInput(name="model", type="mlflow_model", uri="azureml:flights:1"),
        ],
    )
    hops = job_lineage(workspace, scoring.name)
    produced_by = {hop.input: hop.produced_by for hop in hops if hop.depth == 0}
    assert produced_by == {"input": ingest.name, "model": None}
