"""`keel schedule …` and `keel scheduler`, run as real processes against a workspace in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from keel.clock import now_ms
from keel.schedules.timing import iso
from tests.schedules.conftest import ECHO_JOB, write


def keel(workspace: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(workspace), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def test_bad_schedules_fail_in_one_line_and_store_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(tmp_path, "job.yml", ECHO_JOB)
    bad = write(
        tmp_path,
        "bad.yml",
        "name: broken\ntrigger:\n  type: cron\n  expression: '99 * * * *'\ncreate_job: ./job.yml\n",
    )
    result = keel(ws, "schedule", "create", "-f", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {bad}:4: trigger.expression: '99 * * * *' is not a valid cron "
        "expression; expected five fields (minute hour day-of-month month "
        "day-of-week), or six with seconds first"
    )
    assert "Traceback" not in result.stderr
    assert json.loads(keel(ws, "schedule", "list", "-o", "json").stdout) == []


def test_the_schedule_commands(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(tmp_path, "job.yml", ECHO_JOB)
    write(
        tmp_path,
        "window.yml",
        "type: command\ncommand: echo ${{inputs.start}}\ninputs: {start: '${{trigger.window_start}}'}\n",
    )
    write(
        tmp_path,
        "hourly.yml",
        "name: hourly\ntrigger: {type: cron, expression: '0 * * * *'}\ncreate_job: ./job.yml\n",
    )
    start = iso((now_ms() // 3_600_000 - 48) * 3_600_000)
    write(
        tmp_path,
        "days.yml",
        f"name: days\ntrigger:\n  type: tumbling_window\n  frequency: hour\n"
        f"  start_time: '{start}'\n  end_time: '{iso((now_ms() // 3_600_000 + 1) * 3_600_000)}'\n"
        "create_job: ./window.yml\ncatchup: none\n",
    )
    created = keel(ws, "schedule", "create", "-f", str(tmp_path / "hourly.yml"))
    assert created.returncode == 0 and "created schedule hourly (cron)" in created.stdout
    assert keel(ws, "schedule", "create", "-f", str(tmp_path / "days.yml")).returncode == 0
    listed = json.loads(keel(ws, "schedule", "list", "-o", "json").stdout)
    assert [(s["name"], s["type"], s["enabled"]) for s in listed] == [
        ("days", "tumbling_window", True),
        ("hourly", "cron", True),
    ]
    shown = json.loads(keel(ws, "schedule", "show", "hourly", "-o", "json").stdout)
    assert len(shown["next_fires"]) == 5 and shown["last_fires"] == []

    fired = keel(ws, "schedule", "trigger", "hourly")
    assert fired.returncode == 0 and "fired schedule hourly: job " in fired.stdout
    job = fired.stdout.split("job ")[1].split()[0]
    waited = keel(ws, "job", "stream", job)
    assert waited.returncode == 0, waited.stdout + waited.stderr

    assert "disabled" in keel(ws, "schedule", "disable", "hourly").stdout
    assert json.loads(keel(ws, "schedule", "show", "hourly", "-o", "json").stdout)["next_fires"] == []
    assert "enabled" in keel(ws, "schedule", "enable", "hourly").stdout

    backfilled = keel(
        ws, "schedule", "backfill", "days", "--start", start, "--end", iso(now_ms() - 47 * 3_600_000 + 1)
    )
    assert backfilled.returncode == 0, backfilled.stderr
    assert "claimed 1 fire(s) of days" in backfilled.stdout
    rerun = keel(ws, "schedule", "rerun-window", "days", "--window-start", start)
    assert rerun.returncode == 1 and "rerun it once it has finished" in rerun.stderr
    bad = keel(ws, "schedule", "rerun-window", "days", "--window-start", "2001-01-01T00:17:00Z")
    assert bad.returncode == 1 and "is not the start of one of days's windows" in bad.stderr

    assert keel(ws, "schedule", "delete", "hourly").returncode == 0
    assert keel(ws, "schedule", "show", "hourly").stderr.startswith("error: no schedule named 'hourly'")


def test_the_scheduler_runs_in_the_foreground_until_interrupted(tmp_path: Path) -> None:
    import signal
    import time

    ws = tmp_path / "ws"
    write(tmp_path, "job.yml", ECHO_JOB)
    write(
        tmp_path,
        "s.yml",
        "name: fast\ntrigger: {type: cron, expression: '* * * * * *'}\ncreate_job: ./job.yml\n",
    )
    assert keel(ws, "schedule", "create", "-f", str(tmp_path / "s.yml")).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "keel.cli.main", "--workspace", str(ws), "scheduler", "--tick", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    fires: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(fires) < 2:
        time.sleep(0.5)
        fires = json.loads(keel(ws, "schedule", "show", "fast", "-o", "json").stdout)["last_fires"]
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert "scheduler stopped" in errors
    assert len(fires) >= 2
