"""A real ``keel data copy`` killed with SIGKILL at a random point, then resumed.

While the copy runs, a watcher thread scans the destination every few
milliseconds: every file it sees at a final name must already have its full
size. After the kill, the files at their final names are noted; the resume must
send exactly the others (the files in flight at the kill, at most the concurrency,
and those not started),
adopt the ones the killed run finished but had not yet recorded, and leave the
destination byte-identical to the source.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.data.test_copy_local import contents, keel

FILES = 1000
IN_FLIGHT = 4  # --max-concurrency: the most files that can be half-sent when the copy dies


def _source(root: Path) -> dict[str, int]:
    rng = random.Random(4)
    sizes = {}
    for n in range(FILES):
        relative = f"d{n % 20:02d}/f{n:04d}.bin"
        size = rng.randrange(4_000, 40_000)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        sizes[relative] = size
    return sizes


class Watcher(threading.Thread):
    """Scans the destination over and over; notes any visible file whose size is wrong."""

    def __init__(self, root: Path, sizes: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.root, self.sizes = root, sizes
        self.stop = threading.Event()
        self.scans = 0
        self.seen: set[str] = set()
        self.wrong: list[tuple[str, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for folder, _, names in os.walk(self.root):
                for name in names:
                    if name.startswith("."):
                        continue  # a hidden temporary name, never a final one
                    path = Path(folder) / name
                    relative = path.relative_to(self.root).as_posix()
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:
                        continue
                    self.seen.add(relative)
                    if size != self.sizes.get(relative):
                        self.wrong.append((relative, size))
            self.scans += 1


def _done_in_plan(workspace: Workspace, job: str) -> int:
    job_id = get_job(workspace.store, job).id
    with workspace.store.read() as conn:
        query = "SELECT count(*) FROM copy_items WHERE job_id = ? AND status = 'done'"
        return int(conn.exec_driver_sql(query, (job_id,)).scalar_one())


@pytest.mark.slow
def test_a_killed_copy_resumes_sending_only_what_was_unfinished(workspace: Workspace, tmp_path: Path) -> None:
    sizes = _source(tmp_path / "raw")
    target = tmp_path / "out"
    watcher = Watcher(target, sizes)
    watcher.start()
    root = str(workspace.config.root)
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", root, "data", "copy",
               str(tmp_path / "raw"), str(target), "--bandwidth-limit", "8M",
               "--max-concurrency", str(IN_FLIGHT)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not watcher.seen and time.monotonic() < deadline:  # the first file has landed
        time.sleep(0.01)
    time.sleep(random.uniform(0.1, 1.5))
    process.send_signal(signal.SIGKILL)
    process.communicate()
    at_kill = {p for p in contents(target) if not Path(p).name.startswith(".")}
    assert 0 < len(at_kill) < FILES, "the kill should land mid-copy"
    watcher.stop.set()
    watcher.join()
    assert watcher.wrong == [] and watcher.scans > 10

    # Workers take files in plan (path) order, so the unfinished files before the last
    # finished one were in flight at the kill: never more than the concurrency.
    order = sorted(sizes)
    last = max(order.index(p) for p in at_kill)
    in_flight = [p for p in order[: last + 1] if p not in at_kill]
    assert len(in_flight) <= IN_FLIGHT

    job = json.loads(keel(workspace, "job", "list", "-o", "json").stdout)[0]["name"]
    recorded = _done_in_plan(workspace, job)
    resumed = keel(workspace, "data", "copy", "--resume", job, "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    counters = json.loads(resumed.stdout)["counters"]
    unfinished = set(sizes) - at_kill
    # Sent again: only files that were not whole at their final name when the copy died.
    assert counters["files_copied"] == len(unfinished)
    assert counters["bytes_copied"] == sum(sizes[p] for p in unfinished)
    # Finished but not yet recorded when it died: found in place, not sent.
    assert counters["files_adopted"] == len(at_kill) - recorded
    assert contents(target) == contents(tmp_path / "raw")
    assert keel(workspace, "data", "verify", str(tmp_path / "raw"), str(target)).returncode == 0
    history = get_job(workspace.store, job)
    assert history.status.value == "completed" and history.metrics["files_copied"].last_step == 1
