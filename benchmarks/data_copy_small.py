"""10,000 files of 4 KiB, local to local: ``keel data copy`` beside ``cp -r`` and ``rclone copy``.

Each round runs every tool once, in a shuffled order (a fixed rotation kept each tool
behind the same neighbour), into a fresh folder; all are deleted after the last round
(deleting ten thousand files between runs slows this machine's file system for
seconds). The source is read into the page cache before every run (rclone drops the
pages of the files it reads, which left the next tool reading from disk). Targets,
on the wall time of the ``keel`` command (a fresh process, start-up included): at
most 3x ``cp -r``, and faster than ``rclone copy``. Keel's engine called in process
is shown beside it, and the command moving one file at a time in its own process
(``--max-concurrency 1``; by default two forked processes share many small files).

    python benchmarks/data_copy_small.py [--files 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from _harness import Result, median, report
from data_copy_common import (
    KEEL,
    SCRATCH,
    child_env,
    fresh,
    keel_workspace,
    rclone,
    rclone_version,
    remove,
    small_files,
    sync,
    timed,
    warm,
)


def commands(source: Path, workspace: Path) -> dict[str, Callable[[Path], list[str]]]:
    keel = [KEEL, "--workspace", str(workspace), "data", "copy", str(source)]
    return {
        "cp -r": lambda out: ["cp", "-r", str(source), str(out)],
        "keel data copy": lambda out: [*keel, str(out)],
        "keel data copy --verify size": lambda out: [*keel, str(out), "--verify", "size"],
        "keel data copy --max-concurrency 1": lambda out: [*keel, str(out), "--max-concurrency", "1"],
        "rclone copy": lambda out: [rclone(), "copy", str(source), str(out)],
    }


def engine(source: Path, workspace: Path) -> Callable[[Path], float]:
    from keel.data.copy import CopyRequest, copy
    from keel.workspace import Workspace

    opened = Workspace.open(workspace)

    def run(out: Path) -> float:
        sync()
        start = time.perf_counter()
        result = copy(opened, CopyRequest((str(source),), str(out)))
        seconds = time.perf_counter() - start
        assert result.ok and result.counters.files_copied == result.counters.files_planned
        return seconds

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()
    source = small_files(SCRATCH / "small" / "source", args.files, 4096)
    workspace = keel_workspace("small")
    env = child_env()
    timed([KEEL, "--workspace", str(workspace), "init"], env=env)
    runs = commands(source, workspace)
    in_process = engine(source, workspace)
    names = [*runs, "keel engine, in process"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    outputs = SCRATCH / "small" / f"out-{time.time_ns()}"
    try:
        for n in range(-1, args.rounds):  # round -1 warms every tool up and is not counted
            for name in random.Random(n).sample(names, len(names)):
                out = fresh(outputs, "run")
                warm(source)
                seconds = in_process(out) if name not in runs else timed(runs[name](out), env=env)
                if n >= 0:
                    samples[name].append(seconds)
    finally:
        remove(outputs)
    report(
        "data_copy_small",
        f"{args.files:,} files of 4 KiB, local to local (seconds, median of {args.rounds})",
        results(samples),
        rclone=rclone_version(),
        files=args.files,
        rounds=args.rounds,
        load_average={"before": load_before, "after": os.getloadavg()},
    )


def results(samples: dict[str, list[float]]) -> list[Result]:
    cp, peer = median(samples["cp -r"]), median(samples["rclone copy"])
    found = []
    for name, values in samples.items():
        seconds = median(values)
        target, passed = None, None
        if name == "keel data copy":
            target, passed = "≤ 3x cp -r, < rclone", seconds <= 3 * cp and seconds < peer
        note = f"{seconds / cp:.1f}x cp -r, {seconds / peer:.2f}x rclone"
        found.append(Result(name, seconds, "s", values, target, passed, note))
    return found


if __name__ == "__main__":
    main()
