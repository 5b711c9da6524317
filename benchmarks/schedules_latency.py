"""Schedule latency: a cron fire and a dropped file, each to its job running.

A real ``keel scheduler`` process runs against a fresh SQLite workspace. First a cron
schedule fires every second (six fields, seconds first) until ``--fires`` fires have
run; then a storage-event schedule watches a folder while ``--files`` files are
dropped into it, one every ``--gap`` seconds. Latency is read from the store: the
fire's due time (or the file's write time) to the job's ``created_at`` (the fire
recorded, job queued) and to its ``start_time`` (its runner process took it and
started it). Targets: p95 ≤ 1 s from due time to job started (cron), p95 ≤ 2 s from
file written to job started (folder).

    python benchmarks/schedules_latency.py
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import Result, report

CRON_TARGET = 1.0
FILE_TARGET = 2.0
JOB = "type: command\ncommand: echo ${{inputs.note}}\ninputs: {note: '%s'}\n"


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def start_scheduler(root: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(root), "scheduler"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def started_jobs(root: Path, schedule: str) -> list[tuple[int, int, int, str]]:
    """(fire time, job created, job started, file) of the schedule's fires whose job started."""
    from sqlalchemy import select

    from keel.store.schema import jobs, schedule_fires, schedules
    from keel.workspace import Workspace

    workspace = Workspace.open(root)
    try:
        with workspace.store.read() as conn:
            rows = conn.execute(
                select(
                    schedule_fires.c.fire_time,
                    schedule_fires.c.trigger_values,
                    jobs.c.created_at,
                    jobs.c.start_time,
                )
                .join(schedules, schedules.c.id == schedule_fires.c.schedule_id)
                .join(jobs, jobs.c.name == schedule_fires.c.job_name)
                .where(schedules.c.name == schedule, jobs.c.start_time.is_not(None))
            ).all()
    finally:
        workspace.close()
    import json

    return [
        (r.fire_time, r.created_at, r.start_time, json.loads(r.trigger_values).get("file_name", ""))
        for r in rows
    ]


def cron_latency(folder: Path, fires: int) -> tuple[list[float], list[float]]:
    root = folder / "cron-ws"
    (folder / "job.yml").write_text(JOB % "${{trigger.time}}")
    (folder / "cron.yml").write_text(
        "name: every_second\ntrigger: {type: cron, expression: '* * * * * *'}\ncreate_job: ./job.yml\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli.main",
            "--workspace",
            str(root),
            "schedule",
            "create",
            "-f",
            str(folder / "cron.yml"),
        ],
        check=True,
        capture_output=True,
    )
    scheduler = start_scheduler(root)
    try:
        while len(started_jobs(root, "every_second")) < fires + 2:
            time.sleep(1)
    finally:
        stop(scheduler)
    rows = sorted(started_jobs(root, "every_second"))[2 : fires + 2]  # the first two warm the caches
    return [(c - f) / 1000 for f, c, _, _ in rows], [(s - f) / 1000 for f, _, s, _ in rows]


def file_latency(folder: Path, files: int, gap: float) -> tuple[list[float], list[float]]:
    root = folder / "files-ws"
    incoming = folder / "incoming"
    incoming.mkdir()
    (folder / "file-job.yml").write_text(JOB % "${{trigger.file_path}}")
    (folder / "files.yml").write_text(
        "name: dropped\ntrigger: {type: storage_event, path: ./incoming}\ncreate_job: ./file-job.yml\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "keel.cli.main",
            "--workspace",
            str(root),
            "schedule",
            "create",
            "-f",
            str(folder / "files.yml"),
        ],
        check=True,
        capture_output=True,
    )
    scheduler = start_scheduler(root)
    written: dict[str, int] = {}
    try:
        time.sleep(3)  # the scheduler has started and watches the folder
        for index in range(files + 2):
            name = f"drop-{index:04d}.csv"
            (incoming / name).write_text("a,b\n1,2\n")
            written[name] = time.time_ns() // 1_000_000
            time.sleep(gap)
        deadline = time.monotonic() + 120
        while len(started_jobs(root, "dropped")) < files + 2 and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        stop(scheduler)
    rows = sorted(started_jobs(root, "dropped"), key=lambda row: row[3])[2:]
    return [(c - written[n]) / 1000 for _, c, _, n in rows], [(s - written[n]) / 1000 for _, _, s, n in rows]


def figure(name: str, samples: list[float], target: float | None) -> Result:
    value = p95(samples)
    return Result(
        name=name,
        value=value,
        unit="s",
        samples=[round(s, 4) for s in samples],
        target=f"<= {target} s" if target else None,
        passed=value <= target if target else None,
        note=f"median {statistics.median(samples):.3f} s, max {max(samples):.3f} s, n={len(samples)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=50)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between dropped files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-sched-", ignore_cleanup_errors=True) as scratch:
        folder = Path(scratch)
        recorded, started = cron_latency(folder, args.fires)
        file_recorded, file_started = file_latency(folder, args.files, args.gap)
        time.sleep(3)  # the last runners finish before their folders go
    results = [
        figure("cron: due time → job started (p95)", started, CRON_TARGET),
        figure("cron: due time → job recorded (p95)", recorded, None),
        figure("file written → job started (p95)", file_started, FILE_TARGET),
        figure("file written → job recorded (p95)", file_recorded, None),
    ]
    report(
        "schedules_latency",
        "Schedule latency (a `keel scheduler` process, SQLite)",
        results,
        fires=args.fires,
        files=args.files,
        gap=args.gap,
    )


if __name__ == "__main__":
    main()
