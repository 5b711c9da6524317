"""A no-op re-run over 100,000 unchanged files: ``keel data copy --sync`` and ``--incremental``.

The source and its copies are made once (and kept in the scratch folder between
runs of this script; ``--fresh`` starts over): one destination kept by ``--sync``,
one by ``--incremental`` (whose watermark then sits past every file), and one by
``rclone sync`` for comparison. Each round then re-runs the three against
unchanged files. Target: each Keel re-run at most 30 s, moving zero bytes (read
from the job's counters, ``-o json``).

    python benchmarks/data_copy_noop.py [--files 100000] [--rounds 3] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from _harness import Result, median, report
from data_copy_common import KEEL, SCRATCH, child_env, output_of, rclone, rclone_version, small_files, timed

ROOT = SCRATCH / "noop"


def keel_run(workspace: Path, source: Path, target: Path, flag: str) -> tuple[float, dict[str, float]]:
    argv = [KEEL, "--workspace", str(workspace), "data", "copy", str(source), str(target), flag, "-o", "json"]
    seconds, out = output_of(argv, env=child_env())
    return seconds, json.loads(out)["counters"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="make the copies again first")
    args = parser.parse_args()
    load_before = os.getloadavg()
    if args.fresh:
        shutil.rmtree(ROOT / f"copies-{args.files}", ignore_errors=True)
    source = small_files(ROOT / f"source-{args.files}", args.files, 64, per_folder=500)
    copies = ROOT / f"copies-{args.files}"
    workspace = copies / "workspace"
    first = {
        "keel --sync": keel_run(workspace, source, copies / "sync", "--sync")[0],
        "keel --incremental": keel_run(workspace, source, copies / "incremental", "--incremental")[0],
        "rclone sync": timed([rclone(), "sync", str(source), str(copies / "rclone")]),
    }
    samples: dict[str, list[float]] = {name: [] for name in first}
    moved: dict[str, list[float]] = {name: [] for name in first if name.startswith("keel")}
    for _ in range(args.rounds):
        for flag in ("--sync", "--incremental"):
            seconds, counters = keel_run(workspace, source, copies / flag.strip("-"), flag)
            samples[f"keel {flag}"].append(seconds)
            moved[f"keel {flag}"].append(counters["bytes_copied"])
        samples["rclone sync"].append(timed([rclone(), "sync", str(source), str(copies / "rclone")]))
    found = []
    for name, values in samples.items():
        seconds = median(values)
        target, passed, note = None, None, f"first run (copying everything) {first[name]:.1f} s"
        if name in moved:
            zero = all(size == 0 for size in moved[name])
            target, passed = "≤ 30 s, 0 bytes moved", seconds <= 30 and zero
            note += f"; bytes moved in re-runs: {sorted(set(moved[name]))}"
        found.append(Result(f"{name}, no-op re-run", seconds, "s", values, target, passed, note))
    report(
        "data_copy_noop",
        f"No-op re-run over {args.files:,} unchanged files (seconds, median of {args.rounds})",
        found,
        rclone=rclone_version(),
        files=args.files,
        rounds=args.rounds,
        load_average={"before": load_before, "after": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
