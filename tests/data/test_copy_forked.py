"""Many small local files: forked child processes copy, the parent records.

Real files, the real engine and real ``fork``; the killed-copy test runs the real
``keel`` command and kills it with SIGKILL.
"""

from __future__ import annotations

import hashlib
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

from keel.data.copy import CopyRequest, Options, copy, resume
from keel.data.copy.engine import forks
from keel.data.copy.forked import FORK_MIN_FILES, shares
from keel.data.copy.plan import Item
from keel.data.copy.transfer import Transfer
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace
from tests.data.test_copy_local import contents, keel, make_tree

FILES = 2 * FORK_MIN_FILES


def small_tree(root: Path, count: int = FILES, size: int = 700) -> dict[str, bytes]:
    files = {f"d{n // 250:02d}/f{n:05d}.bin": os.urandom(size) for n in range(count)}
    make_tree(root, files)
    return files


def recorded(workspace: Workspace, job: str) -> dict[str, tuple[str, str | None]]:
    job_id = get_job(workspace.store, job).id
    with workspace.store.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT path, status, digest FROM copy_items WHERE job_id = ?", (job_id,)
        ).all()
    return {path: (status, digest) for path, status, digest in rows}


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_many_small_files_are_copied_by_child_processes_and_every_one_recorded(
    workspace: Workspace, tmp_path: Path
) -> None:
    files = small_tree(tmp_path / "raw")
    result = copy(workspace, CopyRequest((str(tmp_path / "raw"),), str(tmp_path / "out")))
    assert result.ok and result.job is not None
    assert result.counters.files_copied == FILES and result.counters.bytes_copied == 700 * FILES
    assert contents(tmp_path / "out") == files
    assert all(
        (tmp_path / "out" / p).stat().st_mtime_ns == (tmp_path / "raw" / p).stat().st_mtime_ns for p in files
    )
    # The hashes the children computed reached the plan, file by file.
    assert recorded(workspace, result.job.name) == {p: ("done", sha256(d)) for p, d in files.items()}


def test_only_many_small_local_files_without_a_limit_fork(workspace: Workspace, tmp_path: Path) -> None:
    from keel.data.copy.listing import Tree
    from keel.data.copy.throttle import Throttle
    from keel.data.locations import resolve_location

    source = tmp_path / "raw"
    source.mkdir()
    tree = Tree(resolve_location(workspace, str(source)), is_file=False, entries=[])
    destination = resolve_location(workspace, str(tmp_path / "out"))
    small = [Item(f"f{n}", 4096, "1") for n in range(FILES)]
    large = [Item(f"f{n}", 64 << 20, "1") for n in range(FILES)]

    def transfer(throttle: Throttle | None = None) -> Transfer:
        return Transfer([tree], destination, Options(), token="t", throttle=throttle)

    assert forks(transfer(), small, 2)
    assert not forks(transfer(), small, 1)  # --max-concurrency 1: this thread alone
    assert not forks(transfer(), large, 2)  # large files: threads (hashing releases the GIL)
    assert not forks(transfer(Throttle(1 << 20)), small, 2)  # a limit would apply per process
    # Not from another thread (a pipeline step, beside other steps' threads).
    decided: list[bool] = []
    helper = threading.Thread(target=lambda: decided.append(forks(transfer(), small, 2)))
    helper.start()
    helper.join()
    assert decided == [False]


def test_shares_deal_runs_of_consecutive_files_to_each_child() -> None:
    dealt = shares(300, 2)
    assert sorted(dealt[0] + dealt[1]) == list(range(300))
    assert dealt[0][:64] == list(range(64)) and dealt[1][:64] == list(range(64, 128))


def test_a_canceled_forked_copy_records_every_file_that_landed(workspace: Workspace, tmp_path: Path) -> None:
    files = small_tree(tmp_path / "raw")
    cancel = threading.Event()
    cancel.set()  # the children are asked to stop at the parent's first look
    first = copy(workspace, CopyRequest((str(tmp_path / "raw"),), str(tmp_path / "out")), cancel=cancel)
    assert first.status == JobStatus.CANCELED and first.job is not None
    landed = contents(tmp_path / "out")
    assert len(landed) < FILES and all(files[p] == data for p, data in landed.items())
    assert first.counters.files_copied == len(landed)  # none landed unrecorded
    done = {p for p, (status, _) in recorded(workspace, first.job.name).items() if status == "done"}
    assert done == set(landed)
    finished = resume(workspace, first.job.name)
    assert finished.ok and contents(tmp_path / "out") == files
    assert (finished.counters.files_copied, finished.counters.files_adopted) == (FILES - len(landed), 0)


def test_the_files_of_a_child_that_died_are_copied_by_the_parent(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = small_tree(tmp_path / "raw")
    parent = os.getpid()
    original = Transfer.run

    def dies_in_a_child(self: Transfer, item: Item):  # type: ignore[no-untyped-def]
        if os.getpid() != parent and item.path == "d03/f00800.bin":
            os._exit(3)  # a child gone without a word, mid-share
        return original(self, item)

    monkeypatch.setattr(Transfer, "run", dies_in_a_child)
    result = copy(workspace, CopyRequest((str(tmp_path / "raw"),), str(tmp_path / "out")))
    assert result.ok and result.counters.files_copied == FILES
    assert contents(tmp_path / "out") == files


@pytest.mark.slow
def test_a_killed_forked_copy_leaves_no_child_copying(workspace: Workspace, tmp_path: Path) -> None:
    count = 20_000
    files = small_tree(tmp_path / "raw", count, 512)
    target = tmp_path / "out"
    root = str(workspace.config.root)
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", root, "data", "copy",
               str(tmp_path / "raw"), str(target)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (target / "d00").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(random.uniform(0.05, 0.3))
    process.send_signal(signal.SIGKILL)
    process.communicate()
    at_kill = contents(target)
    time.sleep(0.5)
    assert contents(target) == at_kill, "a child went on copying after the parent died"
    landed = {p for p in at_kill if not Path(p).name.startswith(".")}
    assert 0 < len(landed) < count, "the kill should land mid-copy"

    # Each child takes its share in order, so in each share the files missing before its
    # last landed one were in flight at the kill: at most one a child.
    order = sorted(files)
    for share in shares(count, 2):
        paths = [order[n] for n in share]
        done = [n for n, p in enumerate(paths) if p in landed]
        assert not done or len([p for p in paths[: max(done) + 1] if p not in landed]) <= 1

    job = json.loads(keel(workspace, "job", "list", "-o", "json").stdout)[0]["name"]
    resumed = keel(workspace, "data", "copy", "--resume", job, "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    counters = json.loads(resumed.stdout)["counters"]
    assert counters["files_copied"] == count - len(landed)
    assert contents(target) == files
