"""Invocations end to end: the job, its workers, its records, its published output and lineage.

Real registry (hash-checked models), real worker processes, real Parquet and CSV, on
SQLite and PostgreSQL; the bad inputs of issue 5 each fail with a message that says
what and where, and publish nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from keel.data.assets import Request as DataRequest
from keel.data.assets import list_assets, materialize, register
from keel.data.lineage import lineage
from keel.endpoints.batch.endpoints import create_deployment, create_endpoint
from keel.endpoints.batch.publish import OUTPUT_NAME
from keel.endpoints.batch.records import mini_batches
from keel.endpoints.batch.run import invoke, run_job
from keel.endpoints.batch.specs import load_deployment, load_endpoint
from keel.errors import InvalidInput, NotFound
from keel.jobs.records import stored_outputs
from keel.store.schema import data_assets, jobs
from keel.tracking.entities import Job, JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.endpoints.batch.conftest import (
    SCORE_ROWS,
    Models,
    deployment_file,
    endpoint_file,
    write,
    write_parquet,
)


def _setup(space: Workspace, folder: Path, models: Models, **deployments: Path) -> None:
    create_endpoint(space, load_endpoint(endpoint_file(folder)))
    for path in deployments.values():
        create_deployment(space, load_deployment(path))


def _score(space: Workspace, **options: object) -> Job:
    job = invoke(space, "flights-batch", **options)  # type: ignore[arg-type]
    run_job(space, job.name)
    return get_job(space.store, job.name)


def _log(space: Workspace, job: Job) -> str:
    return space.artifacts.local_path(f"{job.artifact_location}/user_logs/std_log.txt").read_text()


def _published(space: Workspace) -> int:
    with space.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(data_assets)).scalar_one())


def test_no_code_scoring_appends_predictions_and_publishes_a_version_with_lineage(
    space: Workspace, tmp_path: Path, models: Models
) -> None:
    nocode = deployment_file(
        tmp_path, "nocode", models.mlflow_dir, mini_batch_size=600, max_concurrency_per_instance=2,
        output_file_name="scored.parquet",
    )  # fmt: skip
    _setup(space, tmp_path, models, nocode=nocode)
    rows = write_parquet(tmp_path / "march.parquet", models.frame, row_group_size=250)
    job = _score(space, input=str(rows))
    assert job.status == JobStatus.COMPLETED, job.status_reason
    assert (job.type, job.experiment_name, job.display_name) == (
        "batch_scoring",
        "flights-batch",
        "flights-batch/nocode",
    )
    assert job.params["mini_batch_size"] == "600" and job.params["input"] == str(rows)
    assert job.metrics["rows_scored"].last == 2000 and job.metrics["mini_batches_completed"].last == 4
    # the output: one Parquet file, the input rows with their predictions, registered by the job
    asset = list_assets(space, "flights-batch-predictions")[0]
    assert (asset.version, asset.type, asset.job_name) == ("1", "uri_file", job.name)
    assert job.tags["keel.data_asset.score"] == "flights-batch-predictions:1"
    scored = pq.read_table(materialize(space, asset, tmp_path / "cache")).to_pandas()
    assert list(scored.columns) == ["distance", "hour", "delay", "prediction"]
    pd.testing.assert_frame_equal(scored[models.frame.columns.tolist()], models.frame)
    assert scored.prediction.tolist() == models.estimator.predict(models.frame).tolist()
    output = stored_outputs(space.store, job.id)[OUTPUT_NAME]
    assert (output.type, output.digest) == ("uri_folder", asset.digest)  # the folder holding the file
    # lineage: the predictions come from the input and the model version, both with digests
    hops = {hop.input: hop for hop in lineage(space, asset)}
    assert set(hops) == {"input", "model"}
    assert hops["input"].source == str(rows) and hops["input"].digest is not None
    assert hops["model"].source.startswith("azureml:anonymous-") and hops["model"].digest.startswith(
        "sha256:"
    )
    # each mini-batch's end is recorded; the log tells the story
    ended = mini_batches(space.store, job.id)
    assert [(m["status"], m["items"], m["attempts"]) for m in ended] == [("completed", 600, 1)] * 3 + [
        ("completed", 200, 1)
    ]
    log = _log(space, job)
    assert "2,000 rows in 4 mini-batches" in log and "mini-batch 3 completed: 200 rows out" in log
    assert "registered as data asset flights-batch-predictions:1" in log
    second = _score(space, input=str(rows), overrides=["mini_batch_size=2000"])
    assert second.status == JobStatus.COMPLETED
    assert [a.version for a in list_assets(space, "flights-batch-predictions")] == ["2", "1"]


def test_a_scripted_custom_model_scores_a_folder_given_as_a_data_asset(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    script = """
    import os
    import pickle

    import pandas as pd

    model = None


    def init():
        global model
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
            model = pickle.load(handle)


    def run(mini_batch):
        frames = []
        for path in mini_batch:
            frame = pd.read_csv(path)
            frames.append(pd.DataFrame({"file": os.path.basename(path), "label": model.predict(frame)}))
        return pd.concat(frames)
    """
    scripted = deployment_file(tmp_path, "scripted", models.custom_dir, script=script, mini_batch_size=2)
    _setup(workspace, tmp_path, models, scripted=scripted)
    inbox = tmp_path / "inbox"
    for index in range(5):
        write(
            inbox / f"day{index}.csv", models.frame.iloc[index * 100 : index * 100 + 100].to_csv(index=False)
        )
    register(workspace, DataRequest("inbox", str(inbox)))
    job = _score(workspace, input="azureml:inbox:1")
    assert job.status == JobStatus.COMPLETED, job.status_reason
    assert {i.name: i.uri for i in job.inputs}["input"] == "azureml:inbox:1"
    asset = list_assets(workspace, "flights-batch-predictions")[0]
    scored = pd.read_csv(materialize(workspace, asset, tmp_path / "cache"))
    assert scored.file.tolist() == [f"day{i}.csv" for i in range(5) for _ in range(100)]
    assert scored.label.tolist() == models.estimator.predict(models.frame.iloc[:500]).tolist()
    assert [m["items"] for m in mini_batches(workspace.store, job.id)] == [2, 2, 1]  # files


def test_a_datastore_path_is_an_input(workspace: Workspace, tmp_path: Path, models: Models) -> None:
    from keel.data.datastore_specs import parse_spec
    from keel.data.datastores import create_datastore

    lake = tmp_path / "lake"
    (lake / "2024").mkdir(parents=True)
    write_parquet(lake / "2024" / "march.parquet", models.frame)
    create_datastore(workspace, parse_spec({"name": "lake", "type": "local", "path": str(lake)}))
    _setup(workspace, tmp_path, models, nocode=deployment_file(tmp_path, "nocode", models.mlflow_dir))
    job = _score(workspace, input="azureml://datastores/lake/paths/2024/march.parquet")
    assert job.status == JobStatus.COMPLETED, job.status_reason
    uri = {i.name: i.uri for i in job.inputs}["input"]
    assert uri == "azureml://datastores/lake/paths/2024/march.parquet"


def test_columns_that_do_not_fit_the_signature_fail_before_scoring_naming_them(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    _setup(workspace, tmp_path, models, nocode=deployment_file(tmp_path, "nocode", models.mlflow_dir))
    odd = models.frame.drop(columns="delay").assign(hour=models.frame.hour.astype(str))
    job = _score(workspace, input=str(write_parquet(tmp_path / "odd.parquet", odd)))
    assert job.status == JobStatus.FAILED
    assert "missing column 'delay'" in (job.status_reason or "")
    assert "'hour' should be double" in (job.status_reason or "")
    assert mini_batches(workspace.store, job.id) == [] and _published(workspace) == 0
    assert stored_outputs(workspace.store, job.id) == {}


def test_a_model_file_changed_after_registration_is_never_loaded(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    from keel.models.registry import list_models

    _setup(workspace, tmp_path, models, nocode=deployment_file(tmp_path, "nocode", models.mlflow_dir))
    registered = list_models(workspace)[0]
    stored = registered.path.split("/paths/", 1)[1]
    tampered = workspace.artifacts.local_path(f"{stored}/model.pkl")
    tampered.chmod(0o644)
    tampered.write_bytes(tampered.read_bytes() + b"\x00")
    job = _score(workspace, input=str(write_parquet(tmp_path / "rows.parquet", models.frame)))
    assert job.status == JobStatus.FAILED
    reason = job.status_reason or ""
    assert "model.pkl" in reason and registered.name in reason, reason
    assert _published(workspace) == 0 and mini_batches(workspace.store, job.id) == []


def test_an_empty_folder_fails_the_job_naming_it(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    scripted = deployment_file(tmp_path, "scripted", models.custom_dir, script=SCORE_ROWS)
    _setup(workspace, tmp_path, models, scripted=scripted)
    (tmp_path / "empty").mkdir()
    job = _score(workspace, input=str(tmp_path / "empty"))
    assert job.status == JobStatus.FAILED
    assert job.status_reason == f"the input folder {tmp_path / 'empty'} holds no files to score"


def test_past_the_threshold_the_job_fails_with_a_summary_and_publishes_nothing(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    script = SCORE_ROWS.replace(
        "return model.predict(mini_batch)",
        "if mini_batch['hour'].max() > 1.5:\n        raise ValueError('hour beyond the model')\n"
        "    return model.predict(mini_batch)",
    )
    scripted = deployment_file(
        tmp_path, "scripted", models.custom_dir, script=script, mini_batch_size=100, error_threshold=150,
        max_retries=1,
    )  # fmt: skip
    _setup(workspace, tmp_path, models, scripted=scripted)
    job = _score(workspace, input=str(write_parquet(tmp_path / "rows.parquet", models.frame)))
    assert job.status == JobStatus.FAILED
    reason = job.status_reason or ""
    assert reason.startswith("200 rows failed, more than error_threshold (150); first: mini-batch ")
    assert reason.endswith("after 2 attempts: ValueError: hour beyond the model (scripted.py, line 16)")
    failed = mini_batches(workspace.store, job.id, status="failed")
    assert len(failed) == 2 and all(m["attempts"] == 2 for m in failed)
    assert _published(workspace) == 0 and stored_outputs(workspace.store, job.id) == {}
    assert "attempt 1 failed: ValueError: hour beyond the model" in _log(workspace, job)


def test_unknown_names_and_inputs_are_refused_before_any_job(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    _setup(workspace, tmp_path, models, nocode=deployment_file(tmp_path, "nocode", models.mlflow_dir))
    rows = str(write_parquet(tmp_path / "rows.parquet", models.frame))
    cases = [
        (lambda: invoke(workspace, "nowhere", input=rows), NotFound, "no batch endpoint named 'nowhere'"),
        (
            lambda: invoke(workspace, "flights-batch", input=rows, deployment="ghost"),
            NotFound,
            "batch endpoint 'flights-batch' has no deployment 'ghost'",
        ),
        (
            lambda: invoke(workspace, "flights-batch", input="./missing.parquet"),
            NotFound,
            "no file or folder at",
        ),
        (
            lambda: invoke(workspace, "flights-batch", input="azureml:ghost:1"),
            NotFound,
            "no data asset ghost:1",
        ),
        (
            lambda: invoke(workspace, "flights-batch", input=rows, overrides=["mini_batch_size=-1"]),
            InvalidInput,
            "--set mini_batch_size",
        ),
        (
            lambda: invoke(workspace, "flights-batch", input=rows, input_type="tabular"),
            InvalidInput,
            "unknown input type 'tabular'",
        ),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message):
            call()
    with workspace.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(jobs)).scalar() == 0


def test_a_cancel_request_stops_the_workers(workspace: Workspace, tmp_path: Path, models: Models) -> None:
    from keel.jobs.submit import cancel

    slow = SCORE_ROWS.replace(
        "return model.predict", "import time\n    time.sleep(0.5)\n    return model.predict"
    )
    scripted = deployment_file(tmp_path, "scripted", models.custom_dir, script=slow, mini_batch_size=50)
    _setup(workspace, tmp_path, models, scripted=scripted)
    job = invoke(
        workspace, "flights-batch", input=str(write_parquet(tmp_path / "rows.parquet", models.frame))
    )
    runner = threading.Thread(target=run_job, args=(workspace, job.name))
    runner.start()
    deadline = time.monotonic() + 20
    while get_job(workspace.store, job.name).status != JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert cancel(workspace, job.name) == JobStatus.CANCEL_REQUESTED
    runner.join(30)
    ended = get_job(workspace.store, job.name)
    assert (ended.status, ended.status_reason) == (JobStatus.CANCELED, "canceled on request")
    assert _published(workspace) == 0
    assert len(mini_batches(workspace.store, job.id)) < 40


def test_a_killed_driver_takes_its_workers_with_it(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    import re
    import subprocess
    import sys

    from keel.tracking.jobs import process_alive, reap_dead_jobs

    slow = SCORE_ROWS.replace(
        'print("init done", flush=True)', 'print("worker pid", os.getpid(), flush=True)'
    )
    slow = slow.replace("return model.predict", "import time\n    time.sleep(60)\n    return model.predict")
    scripted = deployment_file(
        tmp_path,
        "scripted",
        models.custom_dir,
        script=slow,
        mini_batch_size=500,
        max_concurrency_per_instance=2,
    )
    _setup(workspace, tmp_path, models, scripted=scripted)
    job = invoke(
        workspace, "flights-batch", input=str(write_parquet(tmp_path / "rows.parquet", models.frame))
    )
    command = [
        sys.executable,
        "-m",
        "keel.endpoints.batch",
        "run",
        job.name,
        "--workspace",
        str(workspace.config.root),
    ]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = workspace.artifacts.local_path(f"{job.artifact_location}/user_logs/std_log.txt")
    deadline = time.monotonic() + 60
    pids: list[int] = []
    while len(pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = [int(pid) for pid in re.findall(r"worker pid (\d+)", log.read_text() if log.exists() else "")]
    assert len(pids) == 2, log.read_text() if log.exists() else "no log"
    driver.kill()
    driver.wait(10)
    deadline = time.monotonic() + 15
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(process_alive(pid) for pid in pids)
    time.sleep(2.1)  # a dead local process is noticed two seconds after its last heartbeat
    assert reap_dead_jobs(workspace.store, timeout_seconds=60) == [job.name]
    assert get_job(workspace.store, job.name).status == JobStatus.FAILED
    assert _published(workspace) == 0
