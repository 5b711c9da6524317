"""What the copy benchmarks share: test data, clean timings, and how each tool is started.

Every figure is the wall time of a fresh process started as a shell would (``cp``,
``rclone``, the installed ``keel`` script), from spawn to exit, so Keel's figure
includes its interpreter and imports. Keel's in-process figure (``keel.data.copy``
called from Python, the whole job: plan, record, copy, manifest) is reported
beside it to show what the start-up costs.

Before each timed run: ``sync``, so no run pays for the previous one's dirty pages;
and where a benchmark reads its source "cold", ``posix_fadvise(DONTNEED)`` on the
source files, which drops only their pages from the page cache (nothing global is
flushed, so other work on the machine is not disturbed). Destinations are fresh
folders and are deleted only after the last round: deleting ten thousand files
on this machine's ext4 slows the file system for seconds afterwards.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
KEEL = str(BIN / "keel")
SCRATCH = Path(os.environ.get("KEEL_BENCH_SCRATCH", tempfile.gettempdir())) / "keel-bench-copy"


def child_env(**variables: str) -> dict[str, str]:
    """The environment of a child: no KEEL_* from this shell, bytecode cached as installs do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEL_", "RCLONE_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(SCRATCH / "pycache")
    env.update(variables)
    return env


def timed(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Seconds from spawn to exit; a non-zero exit stops the benchmark with its output."""
    sync()
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{tail}")
    return seconds


def output_of(argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, str]:
    sync()
    start = time.perf_counter()
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def sync() -> None:
    os.sync()


def drop_cached(root: Path) -> None:
    """Evict these files' pages from the page cache (only theirs), so the next read is cold."""
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(root: Path) -> None:
    """Read the files once, so the next read comes from the page cache."""
    paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while handle.read(16 << 20):
                pass


def random_file(path: Path, size: int) -> Path:
    """A file of random bytes, made once and kept between runs of the benchmark."""
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".part")
    with open(temp, "wb") as handle:
        left = size
        while left:
            chunk = min(left, 64 << 20)
            handle.write(os.urandom(chunk))
            left -= chunk
    temp.replace(path)
    return path


def small_files(root: Path, count: int, size: int, *, per_folder: int = 500) -> Path:
    """``count`` files of ``size`` random bytes in folders of ``per_folder``; kept between runs."""
    marker = root / f".complete-{count}-{size}"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(1)
    for n in range(count):
        folder = root / f"d{n // per_folder:04d}"
        if n % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"f{n:06d}.bin").write_bytes(rng.randbytes(size))
    marker.write_text("")
    return root


def keel_workspace(name: str) -> Path:
    """A fresh workspace folder for one benchmark run (created on first use by keel)."""
    root = SCRATCH / "workspaces" / f"{name}-{os.getpid()}-{time.time_ns()}"
    root.parent.mkdir(parents=True, exist_ok=True)
    return root


def rclone() -> str:
    found = shutil.which("rclone")
    if found is None:
        raise SystemExit("rclone is not installed: apt-get install -y rclone (the peer these compare with)")
    return found


def rclone_version() -> str:
    done = subprocess.run([rclone(), "version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def fresh(parent: Path, label: str) -> Path:
    """A destination path that does not exist yet."""
    parent.mkdir(parents=True, exist_ok=True)
    return parent / f"{label}-{time.time_ns()}"


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    sync()
