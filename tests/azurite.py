"""Azurite, the Azure Storage emulator from npm, started on a free loopback port for the tests.

`make test` installs it into ``.azurite/`` (see the Makefile); if it is missing the
tests that need it fail and say how to install it — they never skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
# The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    host: str
    port: int
    account: str = ACCOUNT
    key: str = KEY

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def datastore(self, name: str, container: str, *, key: str | None = None) -> dict[str, object]:
        """An Azure ML datastore YAML document for a container in this emulator."""
        return {
            "type": "azure_blob",
            "name": name,
            "account_name": self.account,
            "container_name": container,
            "endpoint": self.endpoint,
            "protocol": "http",
            "credentials": {"account_key": key or self.key},
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if not BINARY.exists() or shutil.which("node") is None:
        pytest.fail(
            f"Azurite is not installed at {BINARY}: run `make .azurite/.installed` (npm install azurite)"
        )
    port = _free_port()
    location = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
         "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("Azurite did not start")
            time.sleep(0.1)
    yield Azurite("127.0.0.1", port)
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # it waits for idle client connections to close
        process.kill()
        process.wait(timeout=10)
