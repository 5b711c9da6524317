"""One 2 GiB file, local to local: ``keel data copy`` beside ``cp`` and ``rclone copy``.

Each round runs every tool once, in a shuffled order, into a fresh folder that is
deleted (and synced) after the run. (A fixed rotation kept each tool behind the same
neighbour, and whatever runs right after rclone runs slower.) One pass
reads the source warm (read into the page cache before every run: rclone drops the
pages of what it reads, which left the next tool a cold read), one cold (its pages
are dropped before every run). Figures are throughput at the median time. The
targets (at least 90% of ``cp`` with size verification, 70% with a SHA-256 content
hash) are checked on the ``keel data copy`` command, a fresh process as a user runs
it (interpreter, imports, plan, job record, copy, checks, manifest). Keel's engine
called in process — the same job without the process start — is reported beside
it, without a target, and so are the command's fixed cost (the same command copying
a 1-byte file) and SHA-256's own speed on one core of this machine (hashlib over
256 MiB in memory), the ceiling of any copy that hashes every byte once.

    python benchmarks/data_copy_large.py [--size-gib 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import hashlib
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
    drop_cached,
    fresh,
    keel_workspace,
    random_file,
    rclone,
    rclone_version,
    remove,
    sync,
    timed,
    warm,
)

GIB = 1 << 30
FIXED = "keel command, a 1-byte file"


def tools(source: Path, workspace: Path) -> dict[str, Callable[[Path], list[str]]]:
    keel = [KEEL, "--workspace", str(workspace), "data", "copy"]
    tiny = source.with_name("one-byte.bin")
    tiny.write_bytes(b"k")
    return {
        "cp": lambda out: ["cp", str(source), str(out / source.name)],
        "keel command --verify size": lambda out: [*keel, str(source), f"{out}/", "--verify", "size"],
        "keel command (SHA-256)": lambda out: [*keel, str(source), f"{out}/"],
        "rclone copy": lambda out: [rclone(), "copy", str(source), str(out)],
        # What every `keel data copy` costs whatever it copies: the interpreter, imports,
        # the workspace, the job and its plan, the manifest (a 1-byte file).
        FIXED: lambda out: [*keel, str(tiny), f"{out}/", "--verify", "size"],
    }


def in_process(source: Path, workspace: Path, verify: str) -> Callable[[Path], float]:
    """Keel's engine called from Python: the whole job, without the interpreter's start."""
    from keel.data.copy import CopyRequest, Options, copy
    from keel.workspace import Workspace

    opened = Workspace.open(workspace)

    def run(out: Path) -> float:
        sync()
        start = time.perf_counter()
        result = copy(opened, CopyRequest((str(source),), f"{out}/", Options(verify=verify)))  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        assert result.ok
        return seconds

    return run


def measure(source: Path, rounds: int, cold: bool) -> dict[str, list[float]]:
    workspace = keel_workspace("large")
    env = child_env()
    timed([KEEL, "--workspace", str(workspace), "init"], env=env)
    commands = tools(source, workspace)
    engines = {
        "keel engine --verify size": in_process(source, workspace, "size"),
        "keel engine (SHA-256)": in_process(source, workspace, "hash"),
    }
    samples: dict[str, list[float]] = {name: [] for name in [*commands, *engines]}
    names = list(samples)
    outputs = SCRATCH / "large" / "out"
    for n in range(-1, rounds):  # round -1 warms every tool up and is not counted
        for name in random.Random(n).sample(names, len(names)):
            out = fresh(outputs, "run")
            out.mkdir(parents=True)
            if cold:
                drop_cached(source)
            else:
                warm(source)
            seconds = timed(commands[name](out), env=env) if name in commands else engines[name](out)
            if n >= 0:
                samples[name].append(seconds)
            if name != FIXED:
                assert (out / source.name).stat().st_size == source.stat().st_size
            remove(out)
    return samples


def results(samples: dict[str, list[float]], size: int, cache: str) -> list[Result]:
    rate = {name: size / median(values) / GIB for name, values in samples.items()}
    cp = rate["cp"]
    found = []
    for name, values in samples.items():
        if name == FIXED:
            found.append(Result(f"{name}, {cache}", median(values), "s", values, None, None, "fixed cost"))
            continue
        ratio = rate[name] / cp
        target, passed = None, None
        if name == "keel command --verify size":
            target, passed = "≥ 90% of cp", ratio >= 0.9
        elif name == "keel command (SHA-256)":
            target, passed = "≥ 70% of cp", ratio >= 0.7
        note = f"{median(values):.2f} s, {ratio:.0%} of cp"
        found.append(Result(f"{name}, {cache}", rate[name], "GiB/s", values, target, passed, note))
    return found


def sha256_speed() -> Result:
    """SHA-256 alone, in memory, one core: how fast a hashed copy could possibly go."""
    data = os.urandom(256 << 20)
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        hashlib.sha256(data).digest()
        seconds.append(time.perf_counter() - start)
    rate = len(data) / median(seconds) / GIB
    name = "SHA-256 on one core, in memory"
    return Result(name, rate, "GiB/s", seconds, None, None, "a hashed copy's ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    size = int(args.size_gib * GIB)
    source = random_file(SCRATCH / "large" / f"source-{size}.bin", size)
    found: list[Result] = []
    load_before = os.getloadavg()
    for cache, cold in (("warm", False), ("cold", True)):
        found += results(measure(source, args.rounds, cold), size, cache)
    found.append(sha256_speed())
    report(
        "data_copy_large",
        f"One {args.size_gib:g} GiB file, local to local (GiB/s at the median of {args.rounds})",
        found,
        rclone=rclone_version(),
        size_bytes=size,
        rounds=args.rounds,
        load_average={"before": load_before, "after": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
