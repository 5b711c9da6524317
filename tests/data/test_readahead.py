"""Reading a local source ahead while ``keel data copy`` starts: harmless whatever the path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from keel.data.copy.readahead import WORTH_IT, read_ahead
from keel.data.locations import local_path, names_local_path


def _advisers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "keel-read-ahead"]


def test_read_ahead_returns_at_once_and_never_blocks_or_raises(tmp_path: Path) -> None:
    large = tmp_path / "large.bin"
    with large.open("wb") as handle:
        handle.truncate(WORTH_IT + 1)  # sparse: large without writing it
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening a FIFO to read would wait for a writer without O_NONBLOCK
    for path in (large, fifo, tmp_path / "missing", tmp_path):
        read_ahead(str(path))
    for thread in _advisers():
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_only_local_paths_are_read_ahead_and_they_resolve_like_any_location(tmp_path: Path) -> None:
    assert names_local_path("data/raw") and names_local_path(f"file://{tmp_path}")
    assert not names_local_path("azureml://datastores/lake/paths/raw")
    assert not names_local_path("azureml:flights:1") and not names_local_path("s3://bucket/key")
    assert local_path("raw/../raw/x.csv", base=tmp_path) == str(tmp_path / "raw" / "x.csv")
    assert local_path(f"file://{tmp_path}/a b.csv") == str(tmp_path / "a b.csv")
