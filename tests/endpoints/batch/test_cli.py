"""``keel batch-endpoint`` and ``keel batch-deployment``: the real command, as a process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from keel.workspace import Workspace
from tests.endpoints.batch.conftest import SCORE_ROWS, Models, deployment_file, endpoint_file, write_parquet
from tests.jobs.conftest import keel_cli


def test_create_invoke_stream_and_inspect(workspace: Workspace, tmp_path: Path, models: Models) -> None:
    created = keel_cli(workspace, "batch-endpoint", "create", "-f", str(endpoint_file(tmp_path)))
    assert created.returncode == 0 and created.stdout.strip() == "created batch endpoint flights-batch"
    nocode = deployment_file(
        tmp_path, "nocode", models.mlflow_dir, mini_batch_size=700, output_file_name="p.csv"
    )
    deployed = keel_cli(workspace, "batch-deployment", "create", "-f", str(nocode), "-o", "json")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stderr.strip() == "notice: compute azureml:cpu-cluster runs as local worker processes"
    assert json.loads(deployed.stdout)["settings"]["mini_batch_size"] == 700
    scripted = deployment_file(tmp_path, "scripted", models.custom_dir, script=SCORE_ROWS)
    assert (
        keel_cli(workspace, "batch-deployment", "create", "-f", str(scripted), "--set-default").returncode
        == 0
    )
    shown = json.loads(
        keel_cli(workspace, "batch-endpoint", "show", "-n", "flights-batch", "-o", "json").stdout
    )
    assert shown["defaults"] == {"deployment_name": "scripted"} and shown["deployments"] == [
        "nocode",
        "scripted",
    ]
    updated = keel_cli(
        workspace,
        "batch-endpoint",
        "update",
        "-n",
        "flights-batch",
        "--set",
        "defaults.deployment_name=nocode",
    )
    assert updated.returncode == 0, updated.stderr
    listed = keel_cli(workspace, "batch-deployment", "list", "-e", "flights-batch", "-o", "json")
    assert [(d["name"], d["model"].startswith("azureml:anonymous-")) for d in json.loads(listed.stdout)] == [
        ("nocode", True),
        ("scripted", True),
    ]
    assert "default" in keel_cli(workspace, "batch-deployment", "list", "-e", "flights-batch").stdout

    rows = write_parquet(tmp_path / "rows.parquet", models.frame)
    streamed = keel_cli(
        workspace, "batch-endpoint", "invoke", "-n", "flights-batch", "--input", str(rows), "--stream"
    )
    assert streamed.returncode == 0, streamed.stderr
    assert "2,000 rows in 3 mini-batches" in streamed.stdout
    assert "output: data asset flights-batch-predictions:1" in streamed.stdout
    job = streamed.stdout.splitlines()[0].removeprefix("batch job ")
    jobs = json.loads(
        keel_cli(workspace, "batch-endpoint", "list-jobs", "-n", "flights-batch", "-o", "json").stdout
    )
    assert [found["name"] for found in jobs] == [job]
    detail = json.loads(keel_cli(workspace, "batch-endpoint", "show-job", job, "-o", "json").stdout)
    assert [m["items"] for m in detail["mini_batches"]] == [700, 700, 600]
    target = tmp_path / "download"
    downloaded = keel_cli(workspace, "job", "download", job, "--output-name", "score", "-p", str(target))
    assert downloaded.returncode == 0, downloaded.stderr
    scored = pd.read_csv(target / "named-outputs" / "score" / "p.csv")
    assert scored.prediction.tolist() == models.estimator.predict(models.frame).tolist()


def test_invoke_in_the_background_then_follow_it(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    keel_cli(workspace, "batch-endpoint", "create", "-f", str(endpoint_file(tmp_path)))
    scripted = deployment_file(
        tmp_path, "scripted", models.custom_dir, script=SCORE_ROWS, mini_batch_size=500
    )
    keel_cli(workspace, "batch-deployment", "create", "-f", str(scripted))
    rows = write_parquet(tmp_path / "rows.parquet", models.frame)
    submitted = keel_cli(
        workspace, "batch-endpoint", "invoke", "-n", "flights-batch", "-i", str(rows),
        "--job-name", "nightly_1", "--set", "max_concurrency_per_instance=2", "-o", "json",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout) == {
        "name": "nightly_1",
        "status": "queued",
        "endpoint": "flights-batch",
    }
    followed = keel_cli(workspace, "job", "stream", "nightly_1")
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert "init done" in followed.stdout  # the workers' own output is in the job's log
    shown = json.loads(keel_cli(workspace, "job", "show", "nightly_1", "-o", "json").stdout)
    assert shown["status"] == "completed" and shown["params"]["max_concurrency_per_instance"] == "2"
    assert shown["outputs"]["score"]["type"] == "uri_folder"


def test_bad_input_is_one_line_and_a_non_zero_exit(
    workspace: Workspace, tmp_path: Path, models: Models
) -> None:
    keel_cli(workspace, "batch-endpoint", "create", "-f", str(endpoint_file(tmp_path)))
    keel_cli(
        workspace,
        "batch-deployment",
        "create",
        "-f",
        str(deployment_file(tmp_path, "nocode", models.mlflow_dir)),
    )
    odd = write_parquet(tmp_path / "odd.parquet", models.frame.drop(columns=["delay"]))
    failed = keel_cli(
        workspace, "batch-endpoint", "invoke", "-n", "flights-batch", "-i", str(odd), "--stream"
    )
    assert failed.returncode == 1
    assert "Failed" in failed.stderr and "missing column 'delay'" in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    for args, message in [
        (
            ("batch-endpoint", "invoke", "-n", "nowhere", "-i", str(odd)),
            "error: no batch endpoint named 'nowhere'",
        ),
        (
            ("batch-endpoint", "invoke", "-n", "flights-batch", "-i", "azureml:ghost:3"),
            "error: no data asset ghost:3",
        ),
        (
            ("batch-deployment", "show", "-n", "ghost", "-e", "flights-batch"),
            "error: batch endpoint 'flights-batch' has no",
        ),
        (
            ("batch-endpoint", "create", "-f", str(tmp_path / "missing.yml")),
            "error: " + str(tmp_path / "missing.yml"),
        ),
    ]:
        result = keel_cli(workspace, *args)
        assert result.returncode == 1 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    deleted = keel_cli(workspace, "batch-endpoint", "delete", "-n", "flights-batch", "--yes")
    assert deleted.returncode == 0 and "deleted batch endpoint flights-batch" in deleted.stdout
    started = time.monotonic()
    empty = keel_cli(workspace, "batch-endpoint", "list", "-o", "json")
    assert json.loads(empty.stdout) == [] and time.monotonic() - started < 30
