"""Command jobs and pipelines from Azure ML YAML, run for real in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from keel.jobs.records import stored_outputs
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.jobs.conftest import run_file, steps_of


def test_a_command_job_binds_inputs_writes_outputs_and_logs(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, project / "command.yml")
    assert job.status == JobStatus.COMPLETED, job.status_reason
    assert job.experiment_name == "flights" and job.type == "command"
    outputs = stored_outputs(workspace.store, job.id)
    ids = (workspace.artifacts.local_path(outputs["result"].uri or "") / "ids.txt").read_text().split()
    assert ids == [job.name, job.name, job.name]  # AZUREML_RUN_ID, MLFLOW_RUN_ID, KEEL_JOB_NAME
    log = workspace.artifacts.read_bytes(f"{job.artifact_location}/user_logs/std_log.txt").decode()
    assert "greeting=hello scale=2.5 env=from-env" in log
    assert "3" in log  # wc -l of jan.csv
    inputs = {item.name: item for item in job.inputs}
    assert inputs["table"].uri == str(project / "data" / "monthly" / "jan.csv")
    assert inputs["table"].digest and inputs["table"].digest.startswith("sha256:")
    assert json.loads(inputs["scale"].value or "null") == 2.5


def test_a_pipeline_wires_steps_and_records_lineage(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, project / "pipeline.yml")
    assert job.status == JobStatus.COMPLETED, job.status_reason
    steps = steps_of(workspace, job)
    assert set(steps) == {"prep", "train"}
    prep, train = steps["prep"], steps["train"]
    assert prep.parent_name == job.name and train.display_name == "train"
    rows = stored_outputs(workspace.store, prep.id)["rows"]
    assert rows.value == 3 and rows.uri is None  # a literal output written by the command
    data_input = next(item for item in train.inputs if item.name == "data")
    assert data_input.uri == f"azureml://jobs/{prep.name}/outputs/clean"
    assert data_input.digest == stored_outputs(workspace.store, prep.id)["clean"].digest
    model = stored_outputs(workspace.store, job.id)["trained"]  # the pipeline's own output
    assert model.digest == stored_outputs(workspace.store, train.id)["model"].digest
    saved = json.loads((workspace.artifacts.local_path(model.uri or "") / "model.json").read_text())
    assert saved == {"UA": 26.0, "DL": 5.0}  # AA's -3 is under min_delay 0
    assert train.metrics["loss"].count == 2  # mlflow.log_metric in the step landed on the step
    assert workspace.artifacts.read_bytes(f"{train.artifact_location}/outputs/summary.txt") == b"3 rows\n"


def test_a_second_run_reuses_every_step_and_says_from_where(workspace: Workspace, project: Path) -> None:
    first = steps_of(workspace, run_file(workspace, project / "pipeline.yml"))
    again = run_file(workspace, project / "pipeline.yml")
    assert again.status == JobStatus.COMPLETED
    for name, step in steps_of(workspace, again).items():
        assert step.reused_from == first[name].name
        assert step.reuse_note == f"reused from {first[name].name}"
    assert "trained" in stored_outputs(workspace.store, again.id)


def test_changing_a_parameter_reruns_only_what_depends_on_it(workspace: Workspace, project: Path) -> None:
    run_file(workspace, project / "pipeline.yml")
    changed = steps_of(workspace, run_file(workspace, project / "pipeline.yml", ["jobs.train.inputs.lr=0.2"]))
    assert changed["prep"].reused_from is not None
    assert changed["train"].reused_from is None
    assert (
        changed["train"].reuse_note == "not reused: no earlier run had the same code, environment and inputs"
    )


def test_reuse_follows_content_not_timestamps(workspace: Workspace, project: Path) -> None:
    run_file(workspace, project / "pipeline.yml")
    jan = project / "data" / "monthly" / "jan.csv"
    jan.touch()  # same bytes, new mtime
    touched = steps_of(workspace, run_file(workspace, project / "pipeline.yml"))
    assert touched["prep"].reused_from is not None
    jan.write_text("carrier,delay\nUA,13\n")
    edited = steps_of(workspace, run_file(workspace, project / "pipeline.yml"))
    assert edited["prep"].reused_from is None and edited["train"].reused_from is None


def test_code_changes_and_opt_outs_prevent_reuse(workspace: Workspace, project: Path) -> None:
    run_file(workspace, project / "pipeline.yml")
    forced = steps_of(workspace, run_file(workspace, project / "pipeline.yml", ["settings.force_rerun=true"]))
    assert all(step.reuse_note == "not reused: the pipeline sets force_rerun" for step in forced.values())
    undeterministic = steps_of(
        workspace, run_file(workspace, project / "pipeline.yml", ["jobs.prep.is_deterministic=false"])
    )
    assert undeterministic["prep"].reuse_note == "not reused: the component is not deterministic"
    (project / "src" / "train.py").write_text((project / "src" / "train.py").read_text() + "\n# edited\n")
    edited = steps_of(workspace, run_file(workspace, project / "pipeline.yml"))
    assert edited["train"].reused_from is None  # its code snapshot changed
    assert edited["prep"].reused_from is None  # it shares the same code folder


def test_code_snapshots_respect_amlignore(workspace: Workspace, project: Path) -> None:
    from keel.jobs.snapshot import included_files

    names = {rel for rel, _ in included_files(project / "src")}
    assert names == {".amlignore", "prep.py", "train.py", "trial.py"}


def test_a_failing_step_fails_the_pipeline_and_commits_nothing(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, project / "pipeline.yml", ["jobs.prep.command=python prep.py --bogus-flag"])
    assert job.status == JobStatus.FAILED
    steps = steps_of(workspace, job)
    assert steps["prep"].status == JobStatus.FAILED and steps["prep"].exit_code == 2
    assert "exited with code 2" in (steps["prep"].status_reason or "")
    assert steps["train"].status == JobStatus.CANCELED
    assert "step 'prep' failed" in (job.status_reason or "")
    assert stored_outputs(workspace.store, steps["prep"].id) == {}
    staging = workspace.artifacts.local_path("cas/.staging", allow_empty=True)
    assert not staging.exists() or list(staging.iterdir()) == []
    log = workspace.artifacts.read_bytes(f"{steps['prep'].artifact_location}/user_logs/std_log.txt")
    assert b"prep.py: error: the following arguments are required" in log


def test_job_and_datastore_uris_as_inputs(workspace: Workspace, project: Path, tmp_path: Path) -> None:
    first = run_file(workspace, project / "pipeline.yml")
    prep = steps_of(workspace, first)["prep"]
    workspace.artifacts.write_bytes("shared/table.csv", b"carrier,delay\nUA,1\n")
    spec = tmp_path / "uris.yml"
    spec.write_text(
        "command: cat ${{inputs.clean}}/clean.csv ${{inputs.table}} > ${{outputs.both}}/both.csv\n"
        f"inputs:\n  clean: {{type: uri_folder, path: 'azureml://jobs/{prep.name}/outputs/clean'}}\n"
        "  table: {type: uri_file, path: 'azureml://datastores/workspaceblobstore/paths/shared/table.csv'}\n"
        "outputs:\n  both:\n"
    )
    job = run_file(workspace, spec)
    assert job.status == JobStatus.COMPLETED, job.status_reason
    both = stored_outputs(workspace.store, job.id)["both"]
    text = (workspace.artifacts.local_path(both.uri or "") / "both.csv").read_text()
    assert text.count("carrier,delay") == 2 and "UA,1" in text


def test_a_job_output_that_does_not_exist_fails_clearly(workspace: Workspace, tmp_path: Path) -> None:
    spec = tmp_path / "missing.yml"
    spec.write_text(
        "command: ls ${{inputs.x}}\ninputs:\n  x: {type: uri_folder, path: 'azureml://jobs/ghost_job/outputs/model'}\n"
    )
    job = run_file(workspace, spec)
    assert job.status == JobStatus.FAILED
    assert "job 'ghost_job' has no output 'model'" in (job.status_reason or "")


def test_registered_components_are_used_by_reference(workspace: Workspace, project: Path) -> None:
    from keel.jobs.components import register

    registered, created = register(workspace, project / "components" / "train.yml")
    assert created and (registered.name, registered.version) == ("train_delays", "1")
    assert register(workspace, project / "components" / "train.yml")[1] is False
    job = run_file(workspace, project / "pipeline.yml", ["jobs.train.component=azureml:train_delays:1"])
    assert job.status == JobStatus.COMPLETED, job.status_reason
    latest = run_file(
        workspace, project / "pipeline.yml", ["jobs.train.component=azureml:train_delays@latest"]
    )
    assert latest.status == JobStatus.COMPLETED
    assert get_job(workspace.store, job.name).name == job.name
