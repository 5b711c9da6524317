"""Local to Azure Blob (Azurite, the emulator, on loopback): ``keel data copy`` beside ``rclone copy``.

Azurite (installed in ``.azurite/`` by ``make test``) is started for the run on a
free port, in a scratch folder. Keel writes through a registered ``azure_blob``
datastore; rclone through its ``azureblob`` backend pointed at the same emulator,
configured with ``RCLONE_CONFIG_*`` environment variables (no config file). The
data: one 256 MiB file and 256 files of 1 MiB. Each round uploads into a fresh
prefix with each tool, in alternating order. Reported: MB/s (10^6 bytes per
second) at the median wall time of a fresh process. No target: the emulator, a
single Node.js process on the same two cores, is what bounds both.

    python benchmarks/data_copy_azurite.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from _harness import BENCHMARKS, Result, median, report
from data_copy_common import KEEL, SCRATCH, child_env, random_file, rclone, rclone_version, timed, warm

AZURITE = BENCHMARKS.parent / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "bench"


def start_azurite(location: Path) -> tuple[subprocess.Popen[bytes], int]:
    if not AZURITE.exists():
        raise SystemExit(f"Azurite is not installed at {AZURITE}: run `make .azurite/.installed`")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
         "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("Azurite did not start") from None
            time.sleep(0.1)


def prepare(port: Path | int, workspace: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};"
    ).create_container(CONTAINER)
    spec = workspace.parent / "bench-datastore.yml"
    spec.write_text(
        f"type: azure_blob\nname: bench\naccount_name: {ACCOUNT}\ncontainer_name: {CONTAINER}\n"
        f"endpoint: 127.0.0.1:{port}\nprotocol: http\ncredentials:\n  account_key: {KEY}\n"
    )
    timed([KEEL, "--workspace", str(workspace), "datastore", "create", "-f", str(spec)], env=child_env())


def rclone_env(port: int) -> dict[str, str]:
    """rclone's azureblob backend on the emulator: through a container SAS URL, the one form
    rclone 1.60 accepts with a host and port of our choosing (``use_emulator`` means port 10000)."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    token = generate_container_sas(
        ACCOUNT,
        CONTAINER,
        account_key=KEY,
        permission=ContainerSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, create=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=6),
    )
    url = f"http://127.0.0.1:{port}/{ACCOUNT}/{CONTAINER}?{token}"
    return child_env(RCLONE_CONFIG_AZ_TYPE="azureblob", RCLONE_CONFIG_AZ_SAS_URL=url)


def source_data() -> tuple[Path, int]:
    root = SCRATCH / "azurite-source"
    random_file(root / "large.bin", 256 << 20)
    for n in range(256):
        random_file(root / "parts" / f"part-{n:03d}.bin", 1 << 20)
    return root, sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    source, size = source_data()
    location = SCRATCH / f"azurite-{time.time_ns()}"
    location.mkdir(parents=True)
    process, port = start_azurite(location)
    try:
        workspace = location / "workspace"
        prepare(port, workspace)
        runs = {
            "keel data copy": lambda n: [KEEL, "--workspace", str(workspace), "data", "copy", str(source),
                                         f"azureml://datastores/bench/paths/keel-{n}"],
            "rclone copy": lambda n: [rclone(), "copy", str(source), f"az:{CONTAINER}/rclone-{n}"],
        }  # fmt: skip
        envs = {"keel data copy": child_env(), "rclone copy": rclone_env(port)}
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for n in range(args.rounds):
            for name in list(runs)[n % 2 :] + list(runs)[: n % 2]:
                warm(source)  # rclone drops the pages it reads: the next tool would read from disk
                samples[name].append(timed(runs[name](n), env=envs[name]))
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it waits for idle client connections to close
            process.kill()
            process.wait()
        shutil.rmtree(location, ignore_errors=True)
    found = [
        Result(
            f"{name}, local → Azurite",
            size / median(values) / 1e6,
            "MB/s",
            values,
            note=f"{median(values):.2f} s",
        )
        for name, values in samples.items()
    ]
    report(
        "data_copy_azurite",
        f"{size / 2**20:.0f} MiB (one 256 MiB file, 256 of 1 MiB) local → Azurite "
        f"(MB/s at the median of {args.rounds})",
        found,
        rclone=rclone_version(),
        bytes=size,
        rounds=args.rounds,
        load_average={"before": load_before, "after": os.getloadavg()},
    )


if __name__ == "__main__":
    main()
