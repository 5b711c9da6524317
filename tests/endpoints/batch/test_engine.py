"""The scheduler over real worker processes: scoring scripts on a model folder, no registry.

Retries, timeouts (a hung worker is killed and its mini-batch retried), crashed
workers, the error threshold, both output actions and both output formats, each
with real forked processes, real pickled scikit-learn models and real Parquet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from keel.endpoints.batch.engine import Outcome, Scheduler, Summary
from keel.endpoints.batch.inputs import InputData
from keel.endpoints.batch.output import Assembler
from keel.endpoints.batch.planning import MiniBatch, plan
from keel.endpoints.batch.pool import LocalProcesses
from keel.endpoints.batch.specs import Settings
from keel.endpoints.batch.worker import Scoring, serve
from tests.endpoints.batch.conftest import SCORE_ROWS, Models, write, write_parquet

# Fails, hangs or crashes on the first attempt at mini-batch 1 (a marker file remembers).
FIRST_ATTEMPT_TROUBLE = """
import os
import pickle
import time
from pathlib import Path

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)


def run(mini_batch):
    if float(mini_batch["distance"].iloc[0]) == FIRST_OF_SECOND:
        marker = Path(os.environ["MARKERS"]) / "seen"
        if not marker.exists():
            marker.touch()
            TROUBLE
    return model.predict(mini_batch)
"""

ALWAYS_FAILS_ON_SECOND = """
import os
import pickle

model = None


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)


def run(mini_batch):
    if float(mini_batch["distance"].iloc[0]) == FIRST_OF_SECOND:
        raise ValueError("distance out of range")
    return model.predict(mini_batch)
"""


@dataclass
class Watcher:
    """The scheduler's observer, remembering what it is told."""

    failures: list[tuple[int, int, str, bool]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    stop: str | None = None

    def attempt_failed(self, batch: MiniBatch, attempt: int, error: str, *, retrying: bool) -> None:
        self.failures.append((batch.number, attempt, error, retrying))

    def ended(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def stop_requested(self) -> str | None:
        return self.stop


@dataclass
class Run:
    summary: Summary
    watcher: Watcher
    output: Path
    log: str


def score(
    tmp_path: Path,
    models: Models,
    script: str,
    data: InputData,
    settings: Settings,
    *,
    watcher: Watcher | None = None,
) -> Run:
    """Plan ``data``, score it with ``script`` over real forked workers, assemble the output."""
    found = plan(data, settings.mini_batch_size, tmp_path / "scratch")
    output = tmp_path / "output"
    parts = tmp_path / "parts"
    for folder in (output, parts, tmp_path / "markers"):
        folder.mkdir(exist_ok=True)
    assembler = None
    if settings.output_action == "append_row":
        assembler = Assembler(output, settings.output_file_name, len(found.batches))
    second = float(models.frame.distance.iloc[settings.mini_batch_size or 0])
    source = write(tmp_path / "src" / "score.py", script.replace("FIRST_OF_SECOND", repr(second)))
    scoring = Scoring(
        model_dir=models.custom_dir,
        parts=parts,
        part_format=assembler.part_format if assembler else "arrow",
        output_action=settings.output_action,
        script=source,
        environment={"MARKERS": str(tmp_path / "markers"), "AZUREML_BI_OUTPUT_PATH": str(output)},
        threads=1,
    )
    log_path = tmp_path / "log.txt"
    with open(log_path, "ab") as log:
        descriptor = log.fileno()
        pool = LocalProcesses(
            settings.workers, lambda connection, slot: serve(connection, scoring, slot, descriptor)
        )
        seen = watcher or Watcher()
        summary = Scheduler(found, settings, pool, seen, assembler).run()
    return Run(summary, seen, output, log_path.read_text())


@pytest.fixture
def table(tmp_path: Path, models: Models) -> InputData:
    path = write_parquet(tmp_path / "rows.parquet", models.frame, row_group_size=256)
    return InputData(path, "uri_file", str(path), None)


def test_rows_are_scored_by_two_workers_and_assembled_in_order(
    tmp_path: Path, models: Models, table: InputData
) -> None:
    settings = Settings(mini_batch_size=300, max_concurrency_per_instance=2, output_file_name="out.parquet")
    run = score(tmp_path, models, SCORE_ROWS, table, settings)
    assert run.summary.status == "completed", run.summary.reason
    assert (run.summary.completed, run.summary.failed, run.summary.items_completed) == (7, 0, 2000)
    written = pq.read_table(run.output / "out.parquet").to_pandas()
    assert list(written.columns) == ["prediction"]
    assert written.prediction.tolist() == models.estimator.predict(models.frame).tolist()
    assert run.log.count("init done") == 2  # init() once per worker
    assert run.summary.output is not None and run.summary.output.rows == 2000
    import hashlib

    assert run.summary.output.sha256 == hashlib.sha256((run.output / "out.parquet").read_bytes()).hexdigest()


def test_csv_output_has_one_header_and_every_row(tmp_path: Path, models: Models, table: InputData) -> None:
    script = SCORE_ROWS.replace(
        "return model.predict(mini_batch)",
        "return mini_batch.assign(label=model.predict(mini_batch))",
    )
    run = score(tmp_path, models, script, table, Settings(mini_batch_size=450))
    assert run.summary.status == "completed", run.summary.reason
    written = pd.read_csv(run.output / "predictions.csv")
    assert list(written.columns) == ["distance", "hour", "delay", "label"]
    pd.testing.assert_frame_equal(written.drop(columns="label"), models.frame, check_exact=False)
    assert written.label.tolist() == models.estimator.predict(models.frame).tolist()


@pytest.mark.parametrize(
    ("trouble", "expected"),
    [
        ('raise RuntimeError("flaky storage")', "RuntimeError: flaky storage (score.py, line 20)"),
        ("os._exit(3)", "the worker process exited with code 3 while scoring"),
        ("time.sleep(60)", "timed out after 1.5 s (the worker was killed)"),
    ],
    ids=["exception", "crash", "hang"],
)
def test_a_failed_attempt_is_retried_and_the_output_is_whole(
    tmp_path: Path, models: Models, table: InputData, trouble: str, expected: str
) -> None:
    script = FIRST_ATTEMPT_TROUBLE.replace("TROUBLE", trouble)
    settings = Settings(mini_batch_size=500, max_retries=2, timeout=1.5, output_file_name="p.parquet")
    run = score(tmp_path, models, script, table, settings)
    assert run.summary.status == "completed", run.summary.reason
    assert run.watcher.failures == [(1, 1, expected, True)]
    second = next(o for o in run.watcher.outcomes if o.batch.number == 1)
    assert (second.status, second.attempts) == ("completed", 2)
    written = pq.read_table(run.output / "p.parquet").to_pandas()
    assert written.prediction.tolist() == models.estimator.predict(models.frame).tolist()


def test_past_the_error_threshold_the_run_fails_and_leaves_no_output(
    tmp_path: Path, models: Models, table: InputData
) -> None:
    settings = Settings(mini_batch_size=400, max_retries=1, error_threshold=399)
    run = score(tmp_path, models, ALWAYS_FAILS_ON_SECOND, table, settings)
    assert run.summary.status == "failed"
    assert run.summary.reason == (
        "400 rows failed, more than error_threshold (399); first: mini-batch 1 (rows 400-799) "
        "after 2 attempts: ValueError: distance out of range (score.py, line 15)"
    )
    assert [(n, a, r) for n, a, _, r in run.watcher.failures] == [(1, 1, True), (1, 2, False)]
    assert run.summary.output is None
    assert list(run.output.iterdir()) == []  # the staged file is removed: nothing partial remains


def test_within_the_threshold_failed_mini_batches_are_left_out(
    tmp_path: Path, models: Models, table: InputData
) -> None:
    settings = Settings(
        mini_batch_size=400, max_retries=0, error_threshold=-1, max_concurrency_per_instance=2
    )
    run = score(tmp_path, models, ALWAYS_FAILS_ON_SECOND, table, settings)
    assert run.summary.status == "completed", run.summary.reason
    assert (run.summary.failed, run.summary.items_failed, run.summary.items_completed) == (1, 400, 1600)
    written = pd.read_csv(run.output / "predictions.csv")
    kept = pd.concat([models.frame.iloc[:400], models.frame.iloc[800:]])
    assert written.prediction.tolist() == models.estimator.predict(kept).tolist()


def test_init_failure_fails_the_run_at_once(tmp_path: Path, models: Models, table: InputData) -> None:
    script = SCORE_ROWS.replace('print("init done", flush=True)', 'raise OSError("no GPU here")')
    run = score(tmp_path, models, script, table, Settings(mini_batch_size=500))
    assert run.summary.status == "failed"
    assert (
        run.summary.reason == "the scoring script's init() failed: OSError: no GPU here (score.py, line 11)"
    )
    assert "Traceback" in run.log  # the full traceback is in the job's log, not in the message
    assert run.summary.completed == 0


def test_a_stop_request_ends_the_run_as_canceled(tmp_path: Path, models: Models, table: InputData) -> None:
    script = SCORE_ROWS.replace("return model.predict", "import time; time.sleep(0.3); return model.predict")
    run = score(
        tmp_path, models, script, table, Settings(mini_batch_size=100), watcher=Watcher(stop="canceled")
    )
    assert (run.summary.status, run.summary.reason) == ("canceled", "canceled")
    assert run.summary.completed < 20 and list(run.output.iterdir()) == []


def test_files_of_a_folder_reach_run_as_paths_and_summary_only_keeps_what_the_script_writes(
    tmp_path: Path, models: Models
) -> None:
    folder = tmp_path / "inbox"
    for index in range(5):
        models.frame.iloc[index * 10 : index * 10 + 10].to_csv(
            write(folder / f"f{index}.csv", "").parent / f"f{index}.csv", index=False
        )
    script = """
    import os
    import pickle
    from pathlib import Path

    import pandas as pd

    model = None


    def init():
        global model
        with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
            model = pickle.load(handle)


    def run(mini_batch):
        out = Path(os.environ["AZUREML_BI_OUTPUT_PATH"])
        for path in mini_batch:
            frame = pd.read_csv(path)
            frame.assign(label=model.predict(frame)).to_csv(out / Path(path).name, index=False)
        return mini_batch
    """
    settings = Settings(mini_batch_size=2, output_action="summary_only", max_concurrency_per_instance=2)
    run = score(tmp_path, models, script, InputData(folder, "uri_folder", str(folder), None), settings)
    assert run.summary.status == "completed", run.summary.reason
    assert (run.summary.completed, run.summary.items_completed) == (3, 5)
    assert sorted(path.name for path in run.output.iterdir()) == [f"f{i}.csv" for i in range(5)]
    labels = pd.read_csv(run.output / "f3.csv").label.tolist()
    assert labels == models.estimator.predict(models.frame.iloc[30:40]).tolist()


def test_workers_share_the_cores_and_see_the_deployment_environment(
    tmp_path: Path, models: Models, table: InputData
) -> None:
    script = SCORE_ROWS.replace(
        "return model.predict(mini_batch)",
        "return [f\"{os.environ['MARKERS']}|{os.environ['AZUREML_MODEL_DIR']}|{os.getpid() != PARENT}\"]",
    ).replace("model = None", f"model = None\nPARENT = {os.getpid()}")
    run = score(
        tmp_path, models, script, table, Settings(mini_batch_size=1000, max_concurrency_per_instance=2)
    )
    assert run.summary.status == "completed", run.summary.reason
    values = set(pd.read_csv(run.output / "predictions.csv").prediction)
    assert values == {f"{tmp_path / 'markers'}|{models.custom_dir}|True"}
