"""Data collection: sampled inputs and outputs as hourly Parquet partitions, readable as data assets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from tests.endpoints.online.conftest import COLUMNS, Served, expected, rows

COLLECTOR = {
    "collections": {
        "model_inputs": {"enabled": "True"},
        "model_outputs": {"enabled": "True"},
        "request": {"enabled": True, "data": {"name": "flight-requests", "version": 3}},
    }
}


def wait_for_rows(served: Served, reference: str, count: int, timeout: float = 20.0) -> object:
    import keel.data

    deadline = time.monotonic() + timeout
    while True:
        try:
            table = keel.data.load(reference, workspace=served.workspace)
            if table.num_rows >= count:
                return table
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{reference} did not reach {count} rows")
        time.sleep(0.3)


def test_inputs_and_outputs_land_as_hourly_parquet_with_correlation_ids(
    served: Served, models: dict[str, Path]
) -> None:
    served.endpoint("collected")
    served.deploy("collected", "blue", all_traffic=True, data_collector=COLLECTOR)
    served.settle()
    sent: dict[str, list[float]] = {}
    for number in range(12):
        data = rows(1, seed=200 + number)
        answer = httpx.post(
            f"{served.url}/endpoints/collected/score",
            json={"input_data": {"columns": COLUMNS, "data": data}},
            headers=served.headers("collected", **{"x-request-id": f"corr-{number}"}),
        )
        assert answer.status_code == 200 and answer.headers["x-request-id"] == f"corr-{number}"
        sent[f"corr-{number}"] = data[0]
    inputs = wait_for_rows(served, "azureml:collected-blue-model_inputs:1", 12).to_pandas()  # type: ignore[attr-defined]
    outputs = wait_for_rows(served, "azureml:collected-blue-model_outputs:1", 12).to_pandas()  # type: ignore[attr-defined]
    requests = wait_for_rows(served, "azureml:flight-requests:3", 12).to_pandas()  # type: ignore[attr-defined]
    assert sorted(inputs["correlation_id"]) == sorted(sent)
    for _, row in inputs.iterrows():
        assert [row[name] for name in COLUMNS] == sent[row["correlation_id"]]
    joined = inputs.merge(outputs, on="correlation_id")
    for _, row in joined.iterrows():
        assert row["prediction"] == expected(models, [sent[row["correlation_id"]]])[0]
    assert set(requests["correlation_id"]) == set(sent)
    now = datetime.now(UTC)
    hours = {moment.strftime("%Y/%m/%d/%H") for moment in (now, now - timedelta(hours=1))}  # turn of the hour
    root = served.workspace.config.root / "artifacts" / "modelDataCollector"
    folder = root / "collected" / "blue" / "model_inputs"
    files = list(folder.rglob("*.parquet"))
    assert files and all(file.parent.relative_to(folder).as_posix() in hours for file in files), files
    assert not list(folder.rglob(".*"))  # no half-written file left behind
    assert pq.read_table(files[0]).column_names[:4] == COLUMNS


def test_sampling_keeps_about_the_rate(served: Served) -> None:
    served.endpoint("sampled")
    collector = {"sampling_rate": 0.5, "collections": {"model_inputs": {"enabled": True}}}
    served.deploy("sampled", "blue", all_traffic=True, data_collector=collector)
    served.settle()
    headers = served.headers("sampled")
    with httpx.Client() as client:
        for number in range(200):
            client.post(
                f"{served.url}/endpoints/sampled/invocations",
                json={"instances": rows(1, seed=number)},
                headers=headers,
            )
    table = wait_for_rows(served, "azureml:sampled-blue-model_inputs:1", 40)
    time.sleep(2.5)  # one more flush, so every sampled row is written
    import keel.data

    kept = keel.data.load("azureml:sampled-blue-model_inputs:1", workspace=served.workspace).num_rows
    assert table is not None and 60 < kept < 140, kept
