"""The copy engine between local folders: what lands, what is recorded, and every option.

Real files in tmp_path, the real engine (``keel.data.copy``), and the real ``keel``
command in a subprocess where the command line is what is being tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from keel.data.copy import CopyRequest, Options, copy, verify
from keel.errors import Conflict, NotFound
from keel.tracking.entities import JobStatus
from keel.tracking.jobs import get_job
from keel.workspace import Workspace


def keel(workspace: Workspace | Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    root = workspace.config.root if isinstance(workspace, Workspace) else workspace
    command = [sys.executable, "-m", "keel.cli.main", "--workspace", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def contents(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too), by relative path."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


FLIGHTS = {
    "2013/jan.csv": b"carrier,delay\nUA,3\n",
    "2013/feb.csv": b"carrier,delay\nAA,-2\nDL,7\n",
    "2013/notes.txt": b"raw export\n",
    "readme.md": b"# flights\n",
}


def job_count(workspace: Workspace) -> int:
    with workspace.store.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar_one())


def test_a_folder_copy_is_identical_and_recorded_as_a_job(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    result = copy(workspace, CopyRequest((str(source),), str(tmp_path / "landing")))
    assert result.ok and contents(tmp_path / "landing") == FLIGHTS
    assert result.counters.files_copied == 4 and result.counters.bytes_copied == sum(
        map(len, FLIGHTS.values())
    )
    assert result.job is not None
    job = get_job(workspace.store, result.job.name)
    assert (job.type, job.status) == ("data_transfer", JobStatus.COMPLETED)
    assert job.metrics["files_copied"].last == 4 and job.params["mode"] == "copy"
    manifest = workspace.artifacts.read_bytes(f"{job.artifact_location}/copy/manifest.jsonl").decode()
    lines = [json.loads(line) for line in manifest.splitlines()]
    assert lines[0]["files"] == 4 and lines[0]["digest"] == result.digest
    import hashlib

    by_path = {line["path"]: line for line in lines[1:]}
    assert by_path["2013/jan.csv"]["hash"] == "sha256:" + hashlib.sha256(FLIGHTS["2013/jan.csv"]).hexdigest()
    log = workspace.artifacts.read_bytes(f"{job.artifact_location}/user_logs/std_log.txt").decode()
    assert "copied 4 files" in log


def test_mtimes_are_kept_and_a_sync_rerun_moves_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "out")))
    for relative in FLIGHTS:
        assert (tmp_path / "out" / relative).stat().st_mtime_ns == (source / relative).stat().st_mtime_ns
    again = copy(workspace, CopyRequest((str(source),), str(tmp_path / "out"), Options(sync=True)))
    assert again.ok and again.counters.files_copied == 0 and again.counters.files_unchanged == 4


def test_a_single_file_goes_into_a_folder_or_becomes_the_named_file(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS) / "readme.md"
    (tmp_path / "folder").mkdir()
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "folder")))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "new" / "README.txt")))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "slash") + "/"))
    assert contents(tmp_path / "folder") == {"readme.md": FLIGHTS["readme.md"]}
    assert contents(tmp_path / "new") == {"README.txt": FLIGHTS["readme.md"]}
    assert contents(tmp_path / "slash") == {"readme.md": FLIGHTS["readme.md"]}


def test_include_exclude_and_prefix(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "a"), Options(include=("*.csv",))))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "b"), Options(exclude=("*.csv", "readme.*"))))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "c"), Options(prefix="2013/f")))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "d"), Options(include=("2013/*.txt",))))
    assert sorted(contents(tmp_path / "a")) == ["2013/feb.csv", "2013/jan.csv"]
    assert sorted(contents(tmp_path / "b")) == ["2013/notes.txt"]
    assert sorted(contents(tmp_path / "c")) == ["2013/feb.csv"]
    assert sorted(contents(tmp_path / "d")) == ["2013/notes.txt"]


def test_modified_since_and_until(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    old = time.time() - 7 * 86400
    os.utime(source / "2013/jan.csv", (old, old))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "new"), Options(modified_since=since)))
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "old"), Options(modified_until=since)))
    assert "2013/jan.csv" not in contents(tmp_path / "new") and len(contents(tmp_path / "new")) == 3
    assert sorted(contents(tmp_path / "old")) == ["2013/jan.csv"]


def test_a_dry_run_writes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    shown = keel(workspace, "data", "copy", str(source), str(tmp_path / "out"), "--dry-run", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    plan = json.loads(shown.stdout)
    assert sorted(p["path"] for p in plan["plan"]) == sorted(FLIGHTS) and plan["job"] is None
    assert not (tmp_path / "out").exists() and job_count(workspace) == 0


def test_sync_deletes_extras_only_within_max_delete(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    target = make_tree(tmp_path / "out", {"stale.csv": b"x", "2013/old.csv": b"y", "keep.tmp": b"z"})
    with pytest.raises(Conflict, match="delete 3 files"):
        copy(workspace, CopyRequest((str(source),), str(target), Options(sync=True, max_delete=2)))
    assert sorted(contents(target)) == ["2013/old.csv", "keep.tmp", "stale.csv"]  # nothing copied either
    synced = copy(workspace, CopyRequest((str(source),), str(target), Options(sync=True, exclude=("*.tmp",))))
    assert synced.counters.files_deleted == 2
    assert contents(target) == {**FLIGHTS, "keep.tmp": b"z"}  # excluded files are left alone


def test_sync_deletes_nothing_when_a_file_failed(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    target = make_tree(tmp_path / "out", {"stale.csv": b"x"})
    (target / "readme.md").mkdir()  # a folder where a file must go: that file fails
    result = copy(workspace, CopyRequest((str(source),), str(target), Options(sync=True)))
    assert not result.ok and result.counters.files_failed == 1 and result.counters.files_deleted == 0
    assert (target / "stale.csv").exists()
    assert result.reason is not None and "readme.md" in result.reason


def test_if_exists_fail_refuses_before_writing(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    target = make_tree(tmp_path / "out", {"readme.md": b"mine"})
    with pytest.raises(Conflict, match="already exist"):
        copy(workspace, CopyRequest((str(source),), str(target), Options(if_exists="fail")))
    assert contents(target) == {"readme.md": b"mine"}


def test_incremental_copies_what_is_new_and_advances_its_watermark(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    old = time.time() - 60
    for relative in FLIGHTS:
        os.utime(source / relative, (old, old))
    request = CopyRequest((str(source),), str(tmp_path / "out"), Options(incremental=True))
    first = copy(workspace, request)
    assert first.counters.files_copied == 4
    make_tree(source, {"2013/mar.csv": b"carrier,delay\nB6,1\n", "2013/apr.csv": b"late"})
    mark = _watermark(workspace)
    os.utime(source / "2013/mar.csv", (mark + 0.01, mark + 0.01))  # after the watermark: new
    os.utime(source / "2013/apr.csv", (mark - 5, mark - 5))  # a stamp from the past: not seen again
    second = copy(workspace, request)
    assert second.counters.files_copied == 1 and second.counters.files_listed == 6
    assert "2013/mar.csv" in contents(tmp_path / "out") and _watermark(workspace) > mark
    nothing = copy(workspace, request)
    assert nothing.ok and nothing.counters.files_copied == 0 and nothing.counters.bytes_copied == 0


def _watermark(workspace: Workspace) -> float:
    from keel.data.copy.options import parse_time

    with workspace.store.read() as conn:
        marks = conn.exec_driver_sql("SELECT watermark FROM copy_watermarks").scalars().all()
    assert len(marks) == 1
    return parse_time(marks[0], "watermark") or 0.0


def test_a_failed_incremental_run_keeps_its_watermark(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    old = time.time() - 60
    for relative in FLIGHTS:
        os.utime(source / relative, (old, old))
    target = tmp_path / "out"
    (target / "readme.md").mkdir(parents=True)
    request = CopyRequest((str(source),), str(target), Options(incremental=True))
    assert not copy(workspace, request).ok
    (target / "readme.md").rmdir()
    retried = copy(workspace, request)  # the same window again: every file, none lost
    assert retried.ok and retried.counters.files_copied == 4 and contents(target) == FLIGHTS


def test_bandwidth_limit_is_roughly_respected(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", {f"part{n}.bin": os.urandom(512 * 1024) for n in range(4)})
    started = time.monotonic()
    result = copy(
        workspace, CopyRequest((str(source),), str(tmp_path / "out"), Options(bandwidth_limit="1M"))
    )
    took = time.monotonic() - started
    assert result.ok and 1.5 <= took <= 6  # 2 MiB at 1 MiB/s; the first slice goes at once
    assert result.counters.bytes_per_second <= 1.4 * 1024 * 1024


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "named_temp"])
def test_large_files_are_hashed_as_they_land(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    """Large files take the kernel copy with a hashing thread beside it: through a map of the
    unnamed destination, or (a file system without O_TMPFILE, simulated by switching Keel's
    support flag off) by reading the source. Both must give every byte's SHA-256, over several
    slices (the bandwidth limit cuts them to 10 MiB) and on an overwrite."""
    import hashlib

    from keel.data.copy import local

    if not unnamed:
        monkeypatch.setattr(local, "_TMPFILE", False)
    big = os.urandom(local.SMALL_FILE + 4099)
    source = make_tree(tmp_path / "raw", {"big.bin": big, "sliced.bin": os.urandom(25 << 20) + b"tail"})
    expected = {name: hashlib.sha256((source / name).read_bytes()).hexdigest() for name in contents(source)}
    for attempt in range(2):  # the second run overwrites every file
        options = Options(bandwidth_limit="100M")
        result = copy(workspace, CopyRequest((str(source),), str(tmp_path / "out"), options))
        assert result.ok and result.job is not None, result.reason
        assert contents(tmp_path / "out") == contents(source), attempt
        manifest = workspace.artifacts.read_bytes(f"{result.job.artifact_location}/copy/manifest.jsonl")
        hashes = {line["path"]: line["hash"] for line in map(json.loads, manifest.decode().splitlines()[1:])}
        assert hashes == {name: f"sha256:{digest}" for name, digest in expected.items()}


@pytest.mark.parametrize("concurrency", [1, 3], ids=["calling_thread", "workers"])
def test_a_canceled_copy_stops_between_files_and_resumes(
    workspace: Workspace, tmp_path: Path, concurrency: int
) -> None:
    from keel.data.copy import resume

    files = {f"part-{n:02d}.bin": os.urandom(20_000) for n in range(40)}
    source = make_tree(tmp_path / "raw", files)
    cancel = threading.Event()
    options = Options(bandwidth_limit="200K", max_concurrency=concurrency)  # about 4 s in all
    stopper = threading.Timer(0.5, cancel.set)
    stopper.start()
    first = copy(workspace, CopyRequest((str(source),), str(tmp_path / "out"), options), cancel=cancel)
    stopper.join()
    assert first.status == JobStatus.CANCELED and first.job is not None
    landed = contents(tmp_path / "out")
    assert 0 < len(landed) < len(files) and all(files[name] == data for name, data in landed.items())
    assert first.counters.files_copied == len(landed)  # every file that landed was recorded
    finished = resume(workspace, first.job.name)
    assert finished.ok and contents(tmp_path / "out") == files
    assert (finished.counters.files_copied, finished.counters.files_adopted) == (len(files) - len(landed), 0)


def test_a_file_changing_during_the_copy_is_never_committed(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", {"big.bin": os.urandom(12 << 20), "small.txt": b"ok"})

    def append() -> None:
        with (source / "big.bin").open("ab") as handle:
            handle.write(b"more")

    for skip in (True, False):
        target = tmp_path / f"out-{skip}"
        request = CopyRequest((str(source),), str(target), Options(bandwidth_limit="10M", skip_changed=skip))
        writer = threading.Timer(0.3, append)  # while the kernel copies it, a slice per 0.1 s
        writer.start()
        result = copy(workspace, request)
        writer.join()
        assert contents(target) == {"small.txt": b"ok"}  # no big.bin, and no partial file either
        assert (result.counters.files_skipped, result.counters.files_failed) == ((1, 0) if skip else (0, 1))
        assert result.ok is skip
        problems = result.problems.skipped if skip else result.problems.failed
        assert problems[0][0] == "big.bin" and "changed" in problems[0][1]


def test_a_source_file_gone_before_its_turn_is_skipped_or_failed(
    workspace: Workspace, tmp_path: Path
) -> None:
    from keel.data.copy.plan import save_plan
    from keel.data.copy.prepare import prepare
    from keel.data.copy.records import start_job
    from keel.data.copy.run import run_attempt

    for skip in (True, False):
        source = make_tree(tmp_path / f"raw{skip}", FLIGHTS)
        request = CopyRequest((str(source),), str(tmp_path / f"out{skip}"), Options(skip_missing=skip))
        prepared = prepare(workspace, request)
        (source / "readme.md").unlink()  # gone between the plan and the copy
        job = start_job(workspace, prepared.request)
        save_plan(workspace.store, job.id, prepared.items)
        result = run_attempt(workspace, job, prepared, prepared.items)
        assert result.ok is skip and len(contents(tmp_path / f"out{skip}")) == 3
        problems = result.problems.skipped if skip else result.problems.failed
        assert problems[0][0] == "readme.md" and problems[0][1].startswith("missing")
        if skip:
            skipped = workspace.artifacts.read_bytes(f"{job.artifact_location}/copy/skipped.jsonl").decode()
            assert json.loads(skipped.splitlines()[0])["path"] == "readme.md"


def test_verify_names_every_difference(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    copy(workspace, CopyRequest((str(source),), str(tmp_path / "out")))
    same = keel(workspace, "data", "verify", str(source), str(tmp_path / "out"))
    assert same.returncode == 0 and "identical" in same.stdout
    flipped = bytearray((tmp_path / "out/2013/feb.csv").read_bytes())
    flipped[5] ^= 0x01
    (tmp_path / "out/2013/feb.csv").write_bytes(bytes(flipped))
    (tmp_path / "out/readme.md").unlink()
    make_tree(tmp_path / "out", {"extra.csv": b"?"})
    found = keel(workspace, "data", "verify", str(source), str(tmp_path / "out"))
    assert found.returncode == 1
    assert "content: 2013/feb.csv" in found.stdout and "missing: readme.md" in found.stdout
    assert "extra: extra.csv" in found.stdout
    one_way = verify(workspace, str(source), str(tmp_path / "out"), one_way=True)
    assert [(d.kind, d.path) for d in one_way.differences] == [
        ("content", "2013/feb.csv"),
        ("missing", "readme.md"),
    ]


def test_the_cli_copies_shows_a_summary_and_lists_the_job(workspace: Workspace, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    done = keel(workspace, "data", "copy", str(source), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "copied 4 files" in done.stdout and "job: " in done.stdout
    listed = json.loads(keel(workspace, "job", "list", "-o", "json").stdout)
    assert listed[0]["type"] == "data_transfer" and listed[0]["status"] == "completed"
    shown = keel(workspace, "job", "show", listed[0]["name"])
    assert "files_copied" in shown.stdout and "copy.request" in shown.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["azureml://datastores/nowhere/paths/raw", "{out}"], "no datastore named 'nowhere'"),
        (["{tmp}/missing", "{out}"], "no file or folder at"),
        (["{src}", "{out}", "--include", "*.parquet"], "no file matches the filters"),
        (["{src}", "{src}/inside"], "is inside the source"),
        (["{src}", "{src}"], "the destination is the source"),
        (["{src}", "{out}", "--bandwidth-limit", "fast"], "is not a rate"),
        (["{src}", "{out}", "--modified-since", "yesterday"], "not an ISO 8601"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    workspace: Workspace, tmp_path: Path, arguments: list[str], message: str
) -> None:
    source = make_tree(tmp_path / "raw", FLIGHTS)
    before = contents(source)
    filled = [a.format(src=source, out=tmp_path / "out", tmp=tmp_path) for a in arguments]
    result = keel(workspace, "data", "copy", *filled)
    assert result.returncode == 1 and message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and contents(source) == before and job_count(workspace) == 0


def test_resume_refuses_what_cannot_be_resumed(workspace: Workspace, tmp_path: Path) -> None:
    from keel.data.copy import resume

    source = make_tree(tmp_path / "raw", FLIGHTS)
    done = copy(workspace, CopyRequest((str(source),), str(tmp_path / "out")))
    assert done.job is not None
    with pytest.raises(Conflict, match="already completed"):
        resume(workspace, done.job.name)
    with pytest.raises(NotFound):
        resume(workspace, "no_such_job")
    both = keel(workspace, "data", "copy", str(source), str(tmp_path / "x"), "--resume", done.job.name)
    assert both.returncode == 1 and "takes no SRC or DST" in both.stderr


def test_incremental_runs_record_data_versions_with_their_watermark(
    workspace: Workspace, tmp_path: Path
) -> None:
    from keel.data.assets import get_asset

    source = make_tree(tmp_path / "raw", FLIGHTS)
    old = time.time() - 60
    for relative in FLIGHTS:
        os.utime(source / relative, (old, old))
    request = CopyRequest((str(source),), str(tmp_path / "out"), Options(incremental=True, asset="landed"))
    first = copy(workspace, request)
    assert first.asset == "landed:1" and get_asset(workspace, "landed", "1").file_count == 4
    make_tree(source, {"2013/mar.csv": b"carrier,delay\nB6,1\n"})
    mark = _watermark(workspace)
    os.utime(source / "2013/mar.csv", (mark + 0.01, mark + 0.01))
    assert copy(workspace, request).asset == "landed:2"
    assert copy(workspace, request).asset == "landed:2"  # nothing new: the same version, not a third
    with workspace.store.read() as conn:
        row = conn.exec_driver_sql("SELECT asset_name, asset_version FROM copy_watermarks").one()
    assert tuple(row) == ("landed", "2")


@pytest.mark.postgres
def test_plans_and_statuses_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    from keel.workspace import resolve_workspace

    opened = Workspace(resolve_workspace(tmp_path / "pg", environ={"KEEL_DATABASE_URL": postgres_url}))
    try:
        source = make_tree(tmp_path / "raw", FLIGHTS)
        result = copy(opened, CopyRequest((str(source),), str(tmp_path / "out"), Options(sync=True)))
        assert result.ok and contents(tmp_path / "out") == FLIGHTS and result.job is not None
        with opened.store.read() as conn:
            statuses = conn.exec_driver_sql(
                "SELECT status, count(*) FROM copy_items WHERE job_id = %s GROUP BY status", (result.job.id,)
            ).all()
        assert [tuple(row) for row in statuses] == [("done", 4)]
    finally:
        opened.close()
