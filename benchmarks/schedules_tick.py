"""One scheduler tick with 10,000 enabled schedules, on SQLite (and PostgreSQL).

10,000 cron schedules are stored (one created through ``keel schedule create``, the
rest copies of its row with their own names and next fire times spread over the next
hour), and a storage-event and a job-completion schedule beside them. Measured: a
scheduler's tick when nothing is due (what it does every second; ticks are a second
apart, so the parts that run once a second or every five seconds are included), and a tick in
which 1% of the schedules (100) are due, which claims 100 fires and records 100 jobs
(runners not started: ``launch=False``, so the figure is the tick's own work).
Target: an idle tick ≤ 200 ms on SQLite.

    python benchmarks/schedules_tick.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _harness import Result, median, postgres_reachable, report, scratch_postgres

TARGET_SECONDS = 0.2
HOUR = 3_600_000


def populate(workspace: object, folder: Path, count: int) -> None:
    from sqlalchemy import insert, select

    from keel.clock import now_ms
    from keel.schedules.operations import create_schedule
    from keel.store.schema import schedules

    (folder / "job.yml").write_text(
        "type: command\ncommand: echo ${{inputs.t}}\ninputs: {t: '${{trigger.time}}'}\n"
    )
    (folder / "s.yml").write_text(
        "name: s00000\ntrigger: {type: cron, expression: '0 * * * *'}\ncreate_job: ./job.yml\n"
    )
    (folder / "files").mkdir()
    (folder / "f.yml").write_text(
        "name: files\ntrigger: {type: storage_event, path: ./files}\ncreate_job: ./job.yml\n"
    )
    (folder / "c.yml").write_text(
        "name: chained\ntrigger: {type: job_completed, schedule: s00000}\ncreate_job: ./job.yml\n"
    )
    for name in ("s.yml", "f.yml", "c.yml"):
        create_schedule(workspace, folder / name)  # type: ignore[arg-type]
    store = workspace.store  # type: ignore[attr-defined]
    with store.read() as conn:
        template = dict(conn.execute(select(schedules).where(schedules.c.name == "s00000")).one()._mapping)
    del template["id"]
    now = now_ms()
    rows = [
        {**template, "name": f"s{i:05d}", "next_fire_at": now + 60_000 + (i * 7919) % HOUR}
        for i in range(1, count)
    ]
    with store.write() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(schedules), rows[start : start + 1000])


def make_due(workspace: object, count: int) -> None:
    from sqlalchemy import update

    from keel.clock import now_ms
    from keel.store.schema import schedules

    names = [f"s{i:05d}" for i in range(1, count + 1)]
    with workspace.store.write() as conn:  # type: ignore[attr-defined]
        conn.execute(
            update(schedules).where(schedules.c.name.in_(names)).values(next_fire_at=now_ms() - 1000)
        )


def measure(
    database_url: str | None, folder: Path, count: int, repeat: int
) -> tuple[list[float], list[float]]:
    from keel.schedules.loop import Scheduler
    from keel.workspace import Workspace, resolve_workspace

    environ = {"KEEL_DATABASE_URL": database_url} if database_url else {}
    workspace = Workspace(resolve_workspace(folder / "ws", environ=environ))
    populate(workspace, folder, count)
    scheduler = Scheduler(workspace, launch=False)
    scheduler.tick()  # the first tick opens the folder watcher and warms caches
    idle = []
    for _ in range(repeat):
        time.sleep(1.05)  # as the loop ticks: the once-a-second and every-5-s parts run too
        start = time.perf_counter()
        report_ = scheduler.tick()
        idle.append(time.perf_counter() - start)
        assert report_.claimed == 0
    busy = []
    for round_ in range(3):
        make_due(workspace, 100)
        start = time.perf_counter()
        report_ = scheduler.tick()
        busy.append(time.perf_counter() - start)
        assert report_.claimed == 100 and report_.submitted == 100, (round_, report_)
    scheduler.close()
    workspace.close()
    return idle, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="keel-tick-") as scratch:
        idle, busy = measure(None, Path(scratch), args.schedules, args.repeat)
    results.append(
        Result(
            f"SQLite: idle tick, {args.schedules:,} schedules",
            median(idle),
            "s",
            idle,
            target=f"<= {TARGET_SECONDS} s",
            passed=median(idle) <= TARGET_SECONDS,
            note=f"max {max(idle) * 1000:.1f} ms",
        )
    )
    results.append(
        Result(
            "SQLite: tick claiming and recording 100 due fires",
            median(busy),
            "s",
            busy,
            note="jobs recorded, runners not started",
        )
    )
    if not args.no_postgres and postgres_reachable():
        with (
            scratch_postgres("keel_tick") as url,
            tempfile.TemporaryDirectory(prefix="keel-tick-") as scratch,
        ):
            idle, busy = measure(url, Path(scratch), args.schedules, args.repeat)
        results.append(
            Result(
                f"PostgreSQL: idle tick, {args.schedules:,} schedules",
                median(idle),
                "s",
                idle,
                note=f"max {max(idle) * 1000:.1f} ms",
            )
        )
        results.append(
            Result("PostgreSQL: tick claiming and recording 100 due fires", median(busy), "s", busy)
        )
    report("schedules_tick", "One scheduler tick", results, schedules=args.schedules, repeat=args.repeat)


if __name__ == "__main__":
    main()
