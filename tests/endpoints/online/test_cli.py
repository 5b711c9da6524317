"""The `keel online-endpoint` / `online-deployment` / `up` commands, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.endpoints.online.conftest import COLUMNS, Served, expected, rows


def keel(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_whole_cycle_without_a_gateway(tmp_path: Path, models: dict[str, Path]) -> None:
    root = tmp_path / ".keel"
    endpoint = write(tmp_path, "endpoint.yml", "name: flights\nauth_mode: key\ndescription: delays\n")
    blue = write(
        tmp_path,
        "blue.yml",
        f"name: blue\nendpoint_name: flights\nmodel: {models['mlflow']}\ninstance_type: Standard_DS3_v2\n",
    )
    green = write(
        tmp_path,
        "green.yml",
        f"name: green\nendpoint_name: flights\nmodel: {models['custom']}\n"
        f"code_configuration:\n  code: {models['code']}\n  scoring_script: score.py\n",
    )
    assert keel(root, "online-endpoint", "create", "-f", str(endpoint)).returncode == 0
    created = keel(root, "online-deployment", "create", "-f", str(blue), "--all-traffic")
    assert created.returncode == 0, created.stderr
    assert "`keel up` serves it" in created.stdout and "notice: instance_type" in created.stderr
    assert keel(root, "online-deployment", "create", "-f", str(green)).returncode == 0
    updated = keel(root, "online-endpoint", "update", "-n", "flights", "--traffic", "blue=80 green=20")
    assert updated.returncode == 0 and "blue=80 green=20" in updated.stdout
    shown = json.loads(keel(root, "online-endpoint", "show", "-n", "flights", "-o", "json").stdout)
    assert shown["traffic"] == {"blue": 80, "green": 20} and shown["deployments"] == ["blue", "green"]
    keys = json.loads(keel(root, "online-endpoint", "get-credentials", "-n", "flights").stdout)
    listed = (
        keel(root, "online-endpoint", "list").stdout
        + keel(root, "online-deployment", "list", "-e", "flights").stdout
    )
    assert keys["primaryKey"] not in listed and keys["primaryKey"] not in json.dumps(shown)
    assert (
        keel(
            root, "online-endpoint", "regenerate-keys", "-n", "flights", "--key-type", "secondary"
        ).returncode
        == 0
    )
    again = json.loads(keel(root, "online-endpoint", "get-credentials", "-n", "flights").stdout)
    assert again["primaryKey"] == keys["primaryKey"] and again["secondaryKey"] != keys["secondaryKey"]
    refused = keel(root, "online-deployment", "delete", "-e", "flights", "-n", "green", "--yes")
    assert refused.returncode == 1 and "takes traffic" in refused.stderr
    invoked = keel(root, "online-endpoint", "invoke", "-n", "flights", "-r", str(blue))
    assert invoked.returncode == 1 and "no `keel up` is serving" in invoked.stderr
    assert keel(root, "online-endpoint", "delete", "-n", "flights", "--yes").returncode == 0
    assert json.loads(keel(root, "online-endpoint", "list", "-o", "json").stdout) == []


def test_bad_input_is_one_clear_line_and_records_nothing(tmp_path: Path, models: dict[str, Path]) -> None:
    root = tmp_path / ".keel"
    endpoint = write(tmp_path, "endpoint.yml", "name: flights\nauth_mod: key\n")
    failed = keel(root, "online-endpoint", "create", "-f", str(endpoint))
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"error: {endpoint}:2: auth_mod: unknown field")
    assert "Traceback" not in failed.stderr
    write(tmp_path, "endpoint.yml", "name: flights\n")
    assert keel(root, "online-endpoint", "create", "-f", str(endpoint)).returncode == 0
    spec = write(tmp_path, "blue.yml", "name: blue\nendpoint_name: flights\nmodel: ./nowhere\n")
    result = keel(root, "online-deployment", "create", "-f", str(spec))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "neither a local path nor a registry reference" in result.stderr
    listed = json.loads(keel(root, "online-deployment", "list", "-e", "flights", "-o", "json").stdout)
    assert listed == []
    bad = keel(root, "online-endpoint", "update", "-n", "flights", "--traffic", "blue=100")
    assert bad.returncode == 1 and "'blue', which is not one of its deployments" in bad.stderr


def test_create_waits_for_the_gateway_then_invoke_and_logs(fresh: Served, models: dict[str, Path]) -> None:
    fresh.start()
    root = fresh.root
    folder = root.parent
    write(folder, "endpoint.yml", "name: live\n")
    spec = write(
        folder,
        "green.yml",
        f"name: green\nendpoint_name: live\nmodel: {models['custom']}\n"
        f"code_configuration:\n  code: {models['code']}\n  scoring_script: score.py\n",
    )
    assert keel(root, "online-endpoint", "create", "-f", str(folder / "endpoint.yml")).returncode == 0
    created = keel(root, "online-deployment", "create", "-f", str(spec), "--all-traffic")
    assert created.returncode == 0 and "ready" in created.stdout, created.stdout + created.stderr
    data = rows(2, seed=21)
    request = write(folder, "request.json", json.dumps({"input_data": {"columns": COLUMNS, "data": data}}))
    invoked = keel(root, "online-endpoint", "invoke", "-n", "live", "-r", str(request))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == expected(models, data)
    failing = write(folder, "fail.json", '{"fail": true}')
    invoked = keel(root, "online-endpoint", "invoke", "-n", "live", "-r", str(failing), "-d", "green")
    assert invoked.returncode == 1 and "asked to fail" in invoked.stdout and "500" in invoked.stderr
    logs = keel(root, "online-deployment", "get-logs", "-e", "live", "-n", "green")
    assert "init done" in logs.stdout and "ready in" in logs.stdout
    broken = write(
        folder,
        "broken.yml",
        f"name: broken\nendpoint_name: live\nmodel: {models['custom']}\n"
        f"code_configuration:\n  code: {models['broken']}\n  scoring_script: score.py\n",
    )
    failed = keel(root, "online-deployment", "create", "-f", str(broken))
    assert failed.returncode == 1 and "the model file is missing" in failed.stderr
    key = fresh.key("live")
    everything = (
        logs.stdout + keel(root, "online-deployment", "get-logs", "-e", "live", "-n", "broken").stdout
    )
    assert key not in everything and key not in fresh.stop()
