"""The gateway under change and trouble: traffic splits, mirroring, shifts under load, kill -9, limits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.endpoints.online.conftest import COLUMNS, Served, expected, rows

BODY = {"input_data": {"columns": COLUMNS, "data": rows(1)}}


def metric(served: Served, name: str, **labels: str) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    text = httpx.get(f"{served.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def score(served: Served, endpoint: str, **headers: str) -> httpx.Response:
    """One /score request, over a kept-alive connection."""
    with httpx.Client(timeout=30) as client:
        return client.post(
            f"{served.url}/endpoints/{endpoint}/score", json=BODY, headers=served.headers(endpoint, **headers)
        )


def test_traffic_weights_split_requests(served: Served) -> None:
    served.endpoint("split")
    served.deploy("split", "blue", all_traffic=True)
    served.deploy("split", "green")
    served.traffic("split", {"blue": 70, "green": 30})
    served.settle()
    url, headers = f"{served.url}/endpoints/split/score", served.headers("split")
    with httpx.Client() as client:
        seen = Counter(
            client.post(url, json=BODY, headers=headers).headers["azureml-model-deployment"]
            for _ in range(200)
        )
    assert 0.55 < seen["blue"] / 200 < 0.85, seen
    assert seen["blue"] + seen["green"] == 200
    assert (
        score(served, "split", **{"azureml-model-deployment": "green"}).headers["azureml-model-deployment"]
        == "green"
    )


def test_mirrored_requests_reach_the_mirror_and_answers_come_from_live(served: Served) -> None:
    served.endpoint("mirrored")
    served.deploy("mirrored", "blue", all_traffic=True)
    served.deploy("mirrored", "shadow", request_settings={"max_concurrent_requests_per_instance": 8})
    served.traffic("mirrored", {"blue": 100}, {"shadow": 50})
    served.settle()
    url, headers = f"{served.url}/endpoints/mirrored/score", served.headers("mirrored")
    with httpx.Client() as client:
        for _ in range(200):
            answer = client.post(url, json=BODY, headers=headers)
            assert answer.status_code == 200 and answer.headers["azureml-model-deployment"] == "blue"
    copies = metric(served, "keel_online_mirrored_requests_total", endpoint="mirrored", deployment="shadow")
    labels = {"endpoint": "mirrored", "deployment": "shadow"}  # every status: the mirror has its own limits
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and metric(served, "keel_online_requests_total", **labels) < copies:
        time.sleep(0.1)  # mirrored answers arrive after the live ones
    assert 60 < copies < 140, copies
    assert metric(served, "keel_online_requests_total", **labels) == copies
    assert metric(served, "keel_online_requests_total", **labels, status="200") >= copies * 0.9


def test_a_blue_green_shift_under_load_loses_no_request(served: Served) -> None:
    served.endpoint("shift")
    served.deploy(
        "shift", "blue", all_traffic=True, request_settings={"max_concurrent_requests_per_instance": 16}
    )
    served.deploy("shift", "green", request_settings={"max_concurrent_requests_per_instance": 16})
    served.settle()
    failures: list[str] = []
    answered: Counter[str] = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                answer = client.post(
                    f"{served.url}/endpoints/shift/score", json=BODY, headers=served.headers("shift")
                )
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                answered[answer.headers.get("azureml-model-deployment", "?")] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for split in ({"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"blue": 0, "green": 100}):
        time.sleep(0.8)
        served.traffic("shift", split)
    time.sleep(1.0)
    from keel.endpoints.online.records import delete_deployment

    delete_deployment(served.workspace, "shift", "blue")  # its workers drain, then stop
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert answered["blue"] > 0 and answered["green"] > 0
    assert sum(answered.values()) > 50


def test_updating_a_deployment_swaps_workers_without_failures(served: Served) -> None:
    from keel.endpoints.online.client import wait_for_deployment
    from keel.endpoints.online.deployments import scale_deployment

    served.endpoint("scaled")
    served.deploy("scaled", "blue", all_traffic=True)
    served.settle()
    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            status = score(served, "scaled").status_code
            if status != 200:
                failures.append(status)

    thread = threading.Thread(target=load)
    thread.start()
    updated = scale_deployment(served.workspace, "scaled", "blue", 2)
    settled = wait_for_deployment(served.workspace, "scaled", "blue", updated.revision, timeout=60)
    time.sleep(0.5)
    stop.set()
    thread.join()
    assert settled is not None and settled.state == "ready"
    assert failures == []


def test_a_killed_worker_is_restarted_while_its_sibling_answers(
    served: Served, models: dict[str, Path]
) -> None:
    served.endpoint("sturdy")
    served.scripted("sturdy", "blue", all_traffic=True, instance_count=2)
    served.settle()
    pids = worker_pids(served, "sturdy", "blue")
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    statuses = Counter(score(served, "sturdy").status_code for _ in range(40))
    assert statuses[200] >= 38, statuses  # the request on the killed worker (and one racing it) may fail
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(worker_pids(served, "sturdy", "blue")) < 2:
        time.sleep(0.2)
    after = worker_pids(served, "sturdy", "blue")
    assert len(after) == 2 and pids[0] not in after
    assert metric(served, "keel_online_worker_restarts_total", endpoint="sturdy") >= 1
    data = rows(2, seed=5)
    for _ in range(10):
        answer = httpx.post(
            f"{served.url}/endpoints/sturdy/score",
            json={"input_data": {"columns": COLUMNS, "data": data}},
            headers=served.headers("sturdy"),
        )
        assert answer.json() == expected(models, data)


def test_a_crashing_request_fails_alone_and_the_worker_comes_back(served: Served) -> None:
    served.endpoint("crashy")
    served.scripted("crashy", "blue", all_traffic=True)
    served.settle()
    answer = httpx.post(
        f"{served.url}/endpoints/crashy/score", json={"crash": True}, headers=served.headers("crashy")
    )
    assert answer.status_code == 502 and "stopped" in answer.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and score(served, "crashy").status_code != 200:
        time.sleep(0.2)
    assert score(served, "crashy").status_code == 200


def test_timeouts_and_the_concurrency_limit(served: Served) -> None:
    served.endpoint("limited")
    served.scripted(
        "limited",
        "blue",
        all_traffic=True,
        request_settings={"request_timeout_ms": 300, "max_concurrent_requests_per_instance": 1},
    )
    served.settle()
    url = f"{served.url}/endpoints/limited/score"
    started = time.monotonic()
    answer = httpx.post(url, json={"sleep": 1.5}, headers=served.headers("limited"), timeout=10)
    assert answer.status_code == 408 and "request_timeout_ms (300 ms)" in answer.text
    assert time.monotonic() - started < 1.4  # well before the 1.5 s the script sleeps
    # The worker is still busy with that request: the next one is refused at once, not queued.
    started = time.monotonic()
    answer = httpx.post(url, json=BODY, headers=served.headers("limited"))
    assert answer.status_code == 429 and "limit of 1 concurrent" in answer.text
    assert time.monotonic() - started < 1.0  # refused, not queued behind the sleeping request
    time.sleep(1.5)
    assert score(served, "limited").status_code == 200


def test_a_deployment_whose_init_fails_says_why(served: Served) -> None:
    from keel.endpoints.online.client import wait_for_deployment

    served.endpoint("broken")
    code = {"code": str(served.models["broken"]), "scoring_script": "score.py"}
    created = served.deploy(
        "broken", "blue", wait=False, model=str(served.models["custom"]), code_configuration=code
    )
    settled = wait_for_deployment(served.workspace, "broken", "blue", created.revision, timeout=60)
    assert settled is not None and settled.state == "failed"
    assert "the model file is missing" in (settled.state_reason or "")
    assert "RuntimeError: the model file is missing" in served.logs("broken", "blue")
    served.traffic("broken", {"blue": 100})
    served.settle()
    answer = score(served, "broken")
    assert answer.status_code == 503 and "the model file is missing" in answer.text


def test_adaptive_batching_scores_waiting_requests_together(served: Served, models: dict[str, Path]) -> None:
    served.endpoint("batched")
    settings = {"max_concurrent_requests_per_instance": 64, "max_batch_size": 32, "max_batch_wait_ms": 20}
    served.deploy("batched", "blue", all_traffic=True, request_settings=settings)
    served.settle()
    results: dict[int, list[int]] = {}

    def one(number: int) -> None:
        data = rows(1, seed=100 + number)
        answer = httpx.post(
            f"{served.url}/endpoints/batched/invocations",
            json={"dataframe_split": {"columns": COLUMNS, "data": data}},
            headers=served.headers("batched"),
            timeout=30,
        )
        results[number] = answer.json()["predictions"] == expected(models, data)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results.values()) and len(results) == 48
    count = metric(served, "keel_online_batch_size_rows_count", endpoint="batched")
    rows_scored = metric(served, "keel_online_batch_size_rows_sum", endpoint="batched")
    assert count == 48 and rows_scored > 48, (count, rows_scored)  # each request reports its batch's size


def test_metrics_pass_promtool(served: Served) -> None:
    served.endpoint("measured")
    served.deploy("measured", "blue", all_traffic=True)
    served.settle()
    for _ in range(5):
        score(served, "measured")
    text = httpx.get(f"{served.url}/metrics").text
    for name in (
        "keel_online_requests_total",
        "keel_online_request_duration_seconds_bucket",
        "keel_online_requests_in_flight",
        "keel_online_model_load_seconds",
    ):
        assert f"{name}{{" in text, name
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        metric(served, "keel_online_requests_total", endpoint="measured", deployment="blue", status="200")
        == 5
    )


def worker_pids(served: Served, endpoint: str, deployment: str) -> list[int]:
    """Live worker processes of a deployment (their log names them)."""
    found = []
    for line in served.logs(endpoint, deployment).splitlines():
        match = re.search(r"\[(\S+)#(\d+)\] ready .* pid (\d+)", line)
        if match and match.group(1) == f"{endpoint}/{deployment}":
            found.append(int(match.group(3)))
    live = []
    for pid in dict.fromkeys(found):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().split()[2] != "Z":
                live.append(pid)
    return live


def test_endpoints_survive_a_restart_of_keel_up(fresh: Served, models: dict[str, Path]) -> None:
    fresh.start()
    fresh.endpoint("lasting")
    fresh.deploy("lasting", "blue", all_traffic=True)
    fresh.settle()
    assert score(fresh, "lasting").status_code == 200
    first = fresh.url
    output = fresh.stop()
    assert "Keel gateway on" in output
    assert fresh.key("lasting") not in output
    fresh.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and score(fresh, "lasting").status_code != 200:
        time.sleep(0.1)
    data = rows(3, seed=8)
    answer = httpx.post(
        f"{fresh.url}/endpoints/lasting/score",
        json={"input_data": {"columns": COLUMNS, "data": data}},
        headers=fresh.headers("lasting"),
    )
    assert answer.status_code == 200 and answer.json() == expected(models, data)
    assert first.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_no_auth_refuses_to_bind_beyond_loopback(fresh: Served, host: str) -> None:
    from keel.endpoints.online.host import check_bind
    from keel.errors import InvalidInput

    check_bind(host, require_auth=True)
    with pytest.raises(InvalidInput, match="without authentication"):
        check_bind(host, require_auth=False)
    check_bind("127.0.0.1", require_auth=False)


def test_a_second_keel_up_on_the_same_workspace_is_refused(served: Served) -> None:
    import sys

    env = {**os.environ, "KEEL_WORKSPACE": str(served.root)}
    command = [sys.executable, "-m", "keel.cli.main", "up", "--port", "0"]
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 1
    assert second.stderr.startswith("error: another `keel up` serves this workspace at http://127.0.0.1:")


@pytest.mark.postgres
def test_serving_a_workspace_on_postgresql(
    tmp_path: Path, models: dict[str, Path], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from sqlalchemy import create_engine, text

    name = f"keel_online_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    monkeypatch.setenv("KEEL_DATABASE_URL", postgres_url.rsplit("/", 1)[0] + f"/{name}")
    host = Served(tmp_path / ".keel", models)
    try:
        assert host.workspace.config.database_url.startswith("postgresql")
        host.start()
        host.endpoint("shared")
        host.scripted("shared", "blue", all_traffic=True)
        data = rows(2, seed=31)
        answer = httpx.post(
            f"{host.url}/endpoints/shared/score",
            json={"input_data": {"columns": COLUMNS, "data": data}},
            headers=host.headers("shared"),
        )
        assert answer.status_code == 200 and answer.json() == expected(models, data)
    finally:
        host.stop()
        host.workspace.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
