"""The `keel` command, run as a real process against a temporary workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keel.tracking import jobs as job_ops
from keel.tracking.experiments import get_or_create_experiment
from keel.tracking.metrics import write_metrics
from keel.workspace import Workspace


def keel(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def populated(workspace: Workspace) -> Path:
    store = workspace.store
    experiment = get_or_create_experiment(store, "flights")
    for name, model, losses in (("forest", "rf", [0.5, 0.3]), ("linear", "lr", [0.6, 0.55])):
        job = job_ops.create_job(store, experiment, name=name, display_name=f"{model} model")
        job_ops.log_params(store, job.id, {"model": model, "seed": 1})
        write_metrics(store, [(job.id, "loss", v, 1, s) for s, v in enumerate(losses)])
        job_ops.set_job_status(store, name, job_ops.JobStatus.COMPLETED)
    workspace.close()
    return workspace.config.root


def test_help_lists_the_nouns() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keel.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for noun in ("job", "experiment", "server", "quickstart", "init"):
        assert noun in result.stdout


def test_init_creates_the_workspace(tmp_path: Path) -> None:
    result = keel(tmp_path / "ws", "init")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ws" / "keel.db").exists()
    assert "workspace ready" in result.stdout


def test_job_list_table_and_json(populated: Path) -> None:
    table = keel(populated, "job", "list")
    assert table.returncode == 0 and "forest" in table.stdout and "Completed" in table.stdout
    listed = json.loads(keel(populated, "job", "list", "-o", "json").stdout)
    assert [job["name"] for job in listed] == ["linear", "forest"]
    ordered = keel(populated, "job", "list", "--order-by", "min(metrics.loss) ASC", "-o", "json")
    assert [job["name"] for job in json.loads(ordered.stdout)] == ["forest", "linear"]
    filtered = keel(populated, "job", "list", "--filter", "params.model = 'lr'", "-o", "json")
    assert [job["name"] for job in json.loads(filtered.stdout)] == ["linear"]


def test_job_show_and_compare(populated: Path) -> None:
    shown = keel(populated, "job", "show", "forest")
    assert shown.returncode == 0
    for text in ("forest", "rf model", "Params", "model", "Metrics", "loss", "0.3"):
        assert text in shown.stdout
    data = json.loads(keel(populated, "job", "show", "forest", "-o", "json").stdout)
    assert data["metrics"]["loss"] == {
        "last": 0.3,
        "min": 0.3,
        "max": 0.5,
        "count": 2,
        "last_step": 1,
    }
    assert data["artifact_uri"].startswith("file://")
    compared = keel(populated, "job", "compare", "forest", "linear", "-o", "json")
    assert json.loads(compared.stdout)["linear"]["params"] == {"model": "lr", "seed": "1"}
    table = keel(populated, "job", "compare", "forest", "linear").stdout
    assert "params.model *" in table and "params.seed *" not in table


def test_experiment_list(populated: Path) -> None:
    listed = json.loads(keel(populated, "experiment", "list", "-o", "json").stdout)
    assert {(e["name"], e["jobs"]) for e in listed} == {("Default", 0), ("flights", 2)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("job", "show", "ghost"), "error: no job named 'ghost'"),
        (("job", "list", "--experiment", "nope"), "error: no experiment named 'nope'"),
        (("job", "list", "--filter", "metrics.loss >"), "error: malformed filter at character"),
        (("job", "list", "--order-by", "colour"), "error: cannot order by colour"),
        (("job", "compare", "forest"), "error: compare needs at least two job names"),
        (("server", "--host", "0.0.0.0"), "error: refusing to listen on 0.0.0.0"),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(
    populated: Path, args: tuple[str, ...], message: str
) -> None:
    result = keel(populated, *args)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_usage_errors_exit_with_two(populated: Path) -> None:
    result = keel(populated, "job", "list", "--max-results", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
