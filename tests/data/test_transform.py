"""``type: transform`` steps run for real by the job runner: DuckDB SQL over the step's inputs."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from keel.data.loading import load
from keel.jobs.records import stored_outputs
from keel.jobs.submit import cancel, start_in_background, submit
from keel.specs import load_job
from keel.tracking.entities import Job, JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.jobs.conftest import run_file, steps_of

JOIN = """
type: pipeline
experiment_name: transforms
inputs:
  raw: {type: uri_folder, path: ./data/flights}
  min_delay: 0
jobs:
  join:
    type: transform
    engine: duckdb
    query: >
      SELECT carrier, c.name, delay FROM flights JOIN carriers AS c USING (carrier)
      WHERE delay >= getvariable('min_delay')
    inputs:
      flights: ${{parent.inputs.raw}}
      carriers: {type: uri_file, path: ./data/carriers.parquet}
      min_delay: ${{parent.inputs.min_delay}}
    outputs:
      joined:
  summarize:
    type: transform
    query: SELECT name, count(*) AS flights, avg(delay) AS delay FROM joined GROUP BY name ORDER BY name
    inputs:
      joined: ${{parent.jobs.join.outputs.joined}}
    outputs:
      summary: {type: mltable}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Monthly flights as a CSV folder, carriers as a Parquet file."""
    folder = tmp_path / "project"
    (folder / "data" / "flights").mkdir(parents=True)
    (folder / "data" / "flights" / "jan.csv").write_text("carrier,delay\nUA,12\nAA,-3\nDL,5\n")
    (folder / "data" / "flights" / "feb.csv").write_text("carrier,delay\nUA,20\nDL,1\n")
    carriers = pa.table({"carrier": ["UA", "AA", "DL"], "name": ["United", "American", "Delta"]})
    pq.write_table(carriers, folder / "data" / "carriers.parquet")
    return folder


def pipeline(project: Path, text: str, name: str = "pipeline.yml") -> Path:
    path = project / name
    path.write_text(textwrap.dedent(text))
    return path


def output_table(workspace: Workspace, step: Job, name: str) -> pa.Table:
    return load(workspace.artifacts.local_path(stored_outputs(workspace.store, step.id)[name].uri or ""))


def step_log(workspace: Workspace, step: Job) -> str:
    return workspace.artifacts.read_bytes(f"{step.artifact_location}/user_logs/std_log.txt").decode()


def test_a_transform_joins_a_csv_folder_and_a_parquet_file(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, pipeline(project, JOIN))
    assert job.status == JobStatus.COMPLETED, job.status_reason
    steps = steps_of(workspace, job)
    joined = output_table(workspace, steps["join"], "joined")
    assert sorted(joined.to_pylist(), key=lambda row: (row["carrier"], row["delay"])) == [
        {"carrier": "DL", "name": "Delta", "delay": 1},
        {"carrier": "DL", "name": "Delta", "delay": 5},
        {"carrier": "UA", "name": "United", "delay": 12},
        {"carrier": "UA", "name": "United", "delay": 20},
    ]
    joined_folder = workspace.artifacts.local_path(
        stored_outputs(workspace.store, steps["join"].id)["joined"].uri or ""
    )
    assert sorted(p.name for p in joined_folder.iterdir()) == ["part-0.parquet"]
    summary_folder = workspace.artifacts.local_path(
        stored_outputs(workspace.store, steps["summarize"].id)["summary"].uri or ""
    )
    assert sorted(p.name for p in summary_folder.iterdir()) == ["MLTable", "part-0.parquet"]
    assert load(summary_folder).to_pylist() == [
        {"name": "Delta", "flights": 2, "delay": 3.0},
        {"name": "United", "flights": 2, "delay": 16.0},
    ]
    log = step_log(workspace, steps["join"])
    assert "table flights: csv, 2 file(s)" in log and "table carriers: parquet" in log
    assert "variable min_delay = 0" in log and "wrote 4 rows to joined" in log


def test_a_rerun_reuses_the_transform_until_the_query_or_a_value_changes(
    workspace: Workspace, project: Path
) -> None:
    path = pipeline(project, JOIN)
    first = steps_of(workspace, run_file(workspace, path))
    again = steps_of(workspace, run_file(workspace, path))
    assert again["join"].reused_from == first["join"].name
    assert again["summarize"].reused_from == first["summarize"].name
    stricter = steps_of(workspace, run_file(workspace, path, ["inputs.min_delay=10"]))
    assert stricter["join"].reused_from is None
    assert output_table(workspace, stricter["join"], "joined").num_rows == 2
    pipeline(project, JOIN.replace("ORDER BY name", "ORDER BY name DESC"))
    reordered = steps_of(workspace, run_file(workspace, path))
    assert reordered["join"].reused_from in (first["join"].name, again["join"].name)
    assert reordered["summarize"].reused_from is None


def test_a_bad_query_fails_the_step_and_names_the_problem(workspace: Workspace, project: Path) -> None:
    job = run_file(workspace, pipeline(project, JOIN.replace("FROM flights JOIN", "FROM fligths JOIN")))
    assert job.status == JobStatus.FAILED
    join = steps_of(workspace, job)["join"]
    assert join.status == JobStatus.FAILED
    assert join.status_reason is not None and "the query failed: Catalog Error" in join.status_reason
    assert "fligths" in join.status_reason
    assert stored_outputs(workspace.store, join.id) == {}
    assert "Did you mean" in step_log(workspace, join)  # DuckDB's whole message is in the log


def test_an_mltable_input_is_a_table(workspace: Workspace, project: Path) -> None:
    (project / "data" / "flights" / "MLTable").write_text(
        "paths:\n  - pattern: ./*.csv\ntransformations:\n  - read_delimited: {}\n"
        "  - convert_column_types: [{columns: delay, column_type: float}]\n"
    )
    text = """
    type: transform
    experiment_name: transforms
    query: SELECT typeof(delay) AS kind, sum(delay) AS total FROM flights GROUP BY ALL
    inputs:
      flights: {type: mltable, path: ./data/flights}
    outputs:
      total: {type: uri_file}
    """
    job = run_file(workspace, pipeline(project, text))
    assert job.status == JobStatus.COMPLETED, job.status_reason
    output = stored_outputs(workspace.store, job.id)["total"]
    assert output.uri is not None and output.uri.endswith("/total")
    result = load(workspace.artifacts.local_path(output.uri))  # a Parquet file named "total"
    assert result.to_pylist() == [{"kind": "DOUBLE", "total": 35.0}]


def test_values_are_bound_as_parameters_never_spliced_into_sql(workspace: Workspace, project: Path) -> None:
    tricky = "O'Hare'); DROP TABLE flights; --"
    text = f"""
    type: transform
    experiment_name: transforms
    query: |
      CREATE TEMP TABLE seen AS SELECT count(*) AS n FROM flights;
      SELECT getvariable('label') AS label, n FROM seen
    inputs:
      flights: {{type: uri_folder, path: ./data/flights}}
      label: "{tricky}"
    outputs:
      out:
    """
    job = run_file(workspace, pipeline(project, text))
    assert job.status == JobStatus.COMPLETED, job.status_reason
    assert output_table(workspace, job, "out").to_pylist() == [{"label": tricky, "n": 5}]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("engine: spark", "engine 'spark' is not available yet; use engine: duckdb"),
        ("query: CREATE TEMP TABLE t AS SELECT 1", "the query's last statement returns no rows"),
        ("query: SELEC 1", "the query failed: Parser Error"),
    ],
)
def test_what_a_transform_cannot_do_fails_clearly(
    workspace: Workspace, project: Path, change: str, reason: str
) -> None:
    text = f"""
    type: transform
    experiment_name: transforms
    query: SELECT 1 AS one
    {change}
    outputs:
      out:
    """.replace("    query: SELECT 1 AS one\n    query:", "    query:")
    job = run_file(workspace, pipeline(project, text))
    assert job.status == JobStatus.FAILED
    assert job.status_reason is not None and reason in job.status_reason
    assert stored_outputs(workspace.store, job.id) == {}


def test_canceling_the_job_interrupts_the_query(workspace: Workspace, project: Path) -> None:
    text = """
    type: pipeline
    experiment_name: transforms
    jobs:
      forever:
        type: transform
        query: SELECT sum(i * random()) AS s FROM range(1000000000000000) AS t(i)
        outputs:
          out:
    """
    job = submit(workspace, load_job(pipeline(project, text)))
    start_in_background(workspace, job.name)
    wait_for(
        lambda: (
            "forever" in steps_of(workspace, job)
            and steps_of(workspace, job)["forever"].status == JobStatus.RUNNING
        )
    )
    time.sleep(0.5)  # the query is running
    started = time.monotonic()
    assert cancel(workspace, job.name) == JobStatus.CANCEL_REQUESTED
    wait_for(lambda: get_job(workspace.store, job.name).status.is_terminal)
    assert time.monotonic() - started < 20
    forever = steps_of(workspace, get_job(workspace.store, job.name))["forever"]
    assert forever.status == JobStatus.CANCELED and stored_outputs(workspace.store, forever.id) == {}


def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
