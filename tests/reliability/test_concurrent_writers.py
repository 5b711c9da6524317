"""Sixteen processes log into one SQLite workspace at once, and nothing is lost or refused.

Each process is a real Python interpreter using the SDK the way a training script
does: its own run, a few params, a tag it keeps updating, and three metrics per step
for 30 seconds, with a read of its own job now and then. Every process must exit
cleanly with nothing on stderr, and afterwards the store must hold exactly the
points each process says it logged, with summaries that agree.

On a 2-core machine the processes log about 70,000 points each (1.1 million in
all, in some 140 write transactions a second between them) and the test takes
about 37 s of wall time: 5 s for the interpreters to start, 30 s of logging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from keel.store import Store, open_store
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job

PROCESSES = 16
LOG_SECONDS = 30.0
# Time for all the interpreters to start before they begin logging together.
STARTUP_SECONDS = 5.0

# Slow, and kept on one xdist worker so that they never run at the same time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability")]

WORKER = textwrap.dedent(
    """
    import json
    import sys
    import time

    import keel

    workspace, index, start_at, seconds = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
    keel.set_workspace(workspace)
    logged = {"loss": 0, "accuracy": 0, "lr": 0}
    with keel.start_run(experiment="stress", name=f"worker-{index}") as run:
        keel.log_params({"worker": index, "optimizer": "adam", "lr": 0.001 * (index + 1)})
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        step = 0
        while time.time() < start_at + seconds:
            keel.log_metric("loss", 1.0 / (step + 1), step=step)
            keel.log_metrics({"accuracy": (step % 100) / 100, "lr": 0.001}, step=step)
            for key in logged:
                logged[key] += 1
            step += 1
            if step % 500 == 0:
                keel.set_tag("progress", step)
                keel.log_param(f"checkpoint_{step // 500}", step)
            if step % 2000 == 0:
                seen = keel.get_job(run.name).metrics["loss"].count  # reads its own writes
                if seen != logged["loss"]:
                    sys.exit(f"worker {index} logged {logged['loss']} loss points, reads {seen}")
            time.sleep(0.001)
        keel.set_tag("progress", step)
    print(json.dumps({"job": run.name, "points": logged, "steps": step, "late": began - start_at}))
    """
)


@pytest.fixture
def workers(tmp_path: Path, child_env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the workers, all set to begin logging at the same moment; reap them at the end."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    start_at = time.time() + STARTUP_SECONDS
    started = []
    for index in range(PROCESSES):
        argv = [str(tmp_path / ".keel"), str(index), str(start_at), str(LOG_SECONDS)]
        with (
            (tmp_path / f"worker-{index}.out").open("w") as out,
            (tmp_path / f"worker-{index}.err").open("w") as err,
        ):
            started.append(
                subprocess.Popen(
                    [sys.executable, str(script), *argv],
                    stdout=out,
                    stderr=err,
                    env=child_env,
                    cwd=tmp_path,
                )
            )
    yield started
    for process in started:
        process.kill()  # a no-op for those that finished
        process.wait(timeout=10)


def _count(store: Store, table: str, count: str, group: str = "") -> dict[tuple[str, str], int]:
    """``count`` per (job name, metric key) over ``table``."""
    query = f"""
        SELECT j.name, k.name, {count} FROM {table} m
        JOIN jobs j ON j.id = m.job_id JOIN metric_keys k ON k.id = m.key_id {group}
    """
    with store.read() as conn:
        return {(job, key): n for job, key, n in conn.execute(text(query))}


def test_sixteen_processes_log_at_once_and_every_point_is_stored(
    workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    reports = []
    for index, process in enumerate(workers):
        process.wait(timeout=STARTUP_SECONDS + LOG_SECONDS + 60)
        stderr = (tmp_path / f"worker-{index}.err").read_text()
        assert (process.returncode, stderr) == (0, ""), f"worker {index} failed"
        reports.append(json.loads((tmp_path / f"worker-{index}.out").read_text()))

    store = open_store(f"sqlite:///{tmp_path / '.keel' / 'keel.db'}")
    rows = _count(store, "metrics", "count(*)", "GROUP BY j.name, k.name")
    summaries = _count(store, "metric_summaries", "m.point_count")
    assert len(rows) == len(summaries) == PROCESSES * 3
    for report in reports:
        name, steps = report["job"], report["steps"]
        assert report["late"] < STARTUP_SECONDS, "every worker logged alongside the others"
        assert steps >= 1_000, "every worker logged continuously"
        for key, points in report["points"].items():
            assert rows[(name, key)] == summaries[(name, key)] == points
        job = get_job(store, name)
        assert job.status == JobStatus.COMPLETED
        assert job.tags["progress"] == str(steps)
        assert len(job.params) == 3 + steps // 500
    store.close()
