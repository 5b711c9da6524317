"""1,000 files dropped at once into a watched folder: 1,000 jobs, none missed, none duplicated.

A real ``keel scheduler`` process watches a folder of a fresh SQLite workspace; the
benchmark writes ``--files`` files into it as fast as it can, then waits until every
file's job has been recorded and (unless ``--no-run``) has run to the end. Checked:
exactly one fire and one job per file, every job completed, each job's input naming
its own file. Reported: time from the first file written to the last job recorded,
and to the last job completed.

    python benchmarks/schedules_burst.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _harness import Result, report


def counts(root: Path) -> tuple[int, int, list[tuple[str, str | None, str | None]]]:
    from sqlalchemy import select

    from keel.store.schema import jobs, schedule_fires
    from keel.workspace import Workspace

    workspace = Workspace.open(root)
    try:
        with workspace.store.read() as conn:
            rows = conn.execute(
                select(schedule_fires.c.trigger_values, schedule_fires.c.job_name, jobs.c.status).outerjoin(
                    jobs, jobs.c.name == schedule_fires.c.job_name
                )
            ).all()
            job_rows = conn.execute(select(jobs.c.name).where(jobs.c.parent_id.is_(None))).all()
    finally:
        workspace.close()
    files = [(json.loads(r.trigger_values)["file_name"], r.job_name, r.status) for r in rows]
    recorded = sum(1 for _, job, status in files if job and status)
    return recorded, len(job_rows), files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--no-run", action="store_true", help="stop once every job is recorded")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-burst-", ignore_cleanup_errors=True) as scratch:
        folder = Path(scratch)
        root, incoming = folder / "ws", folder / "incoming"
        incoming.mkdir()
        (folder / "job.yml").write_text(
            "type: command\ncommand: echo ${{inputs.file}}\ninputs: {file: '${{trigger.file_name}}'}\n"
        )
        (folder / "s.yml").write_text(
            "name: burst\ntrigger: {type: storage_event, path: ./incoming}\ncreate_job: ./job.yml\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        keel = [sys.executable, "-m", "keel.cli.main", "--workspace", str(root)]
        subprocess.run(
            [*keel, "schedule", "create", "-f", str(folder / "s.yml")],
            check=True,
            env=env,
            capture_output=True,
        )
        scheduler = subprocess.Popen(
            [*keel, "scheduler"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(3)
            began = time.perf_counter()
            for index in range(args.files):
                (incoming / f"part-{index:05d}.csv").write_text(f"{index}\n")
            written = time.perf_counter() - began
            recorded_at = completed_at = None
            deadline = began + args.timeout
            while time.perf_counter() < deadline:
                time.sleep(1)
                recorded, _, files = counts(root)
                if recorded_at is None and recorded >= args.files:
                    recorded_at = time.perf_counter() - began
                    if args.no_run:
                        break
                if sum(status == "completed" for _, _, status in files) >= args.files:
                    completed_at = time.perf_counter() - began
                    break
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=60)
        time.sleep(2)
        recorded, job_count, files = counts(root)
    per_file = Counter(name for name, _, _ in files)
    missing = args.files - len(per_file)
    duplicated = sum(count - 1 for count in per_file.values())
    ok = missing == 0 and duplicated == 0 and job_count == args.files and recorded_at is not None
    results = [
        Result(
            f"{args.files:,} files: jobs recorded (missing {missing}, duplicated {duplicated})",
            recorded_at or float("nan"),
            "s",
            target="every file once",
            passed=ok,
            note=f"files written in {written:.2f} s; {job_count} jobs in the store",
        ),
    ]
    if not args.no_run:
        done = sum(status == "completed" for _, _, status in files)
        results.append(
            Result(
                f"{args.files:,} files: jobs completed ({done})",
                completed_at or float("nan"),
                "s",
                target="all complete",
                passed=done == args.files,
                note=f"{args.files / completed_at:.1f} jobs/s" if completed_at else "",
            )
        )
    report(
        "schedules_burst", "Files dropped at once into a watched folder (SQLite)", results, files=args.files
    )


if __name__ == "__main__":
    main()
