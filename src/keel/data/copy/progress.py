"""What a copy tells people while it runs (a Rich progress bar) and when it ends (counters).

The bar shows bytes done of the plan, bytes per second, files done of the plan
and the time left. It is drawn on stderr only when stderr is a terminal, and
updated from the engine's main thread only (the workers never touch it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass
class Counters:
    """What one attempt of a copy did; logged as the job's metrics at its end."""

    files_listed: int = 0
    files_planned: int = 0
    bytes_planned: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    files_adopted: int = 0  # already at their final name after a killed attempt: kept, not resent
    files_unchanged: int = 0  # left out of the plan: the destination has them (sync, incremental)
    files_skipped: int = 0
    files_failed: int = 0
    files_deleted: int = 0
    files_restarted: int = 0  # were in flight when an earlier attempt stopped: sent again
    bytes_restarted: int = 0
    store_hash_checked: int = 0  # files whose store-computed hash matched the one Keel computed
    seconds: float = 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_copied / self.seconds if self.seconds > 0 else 0.0

    def as_metrics(self) -> dict[str, float]:
        values: dict[str, float] = {k: float(v) for k, v in asdict(self).items()}
        values["bytes_per_second"] = self.bytes_per_second
        return values

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_per_second": self.bytes_per_second}


class Reporter(Protocol):
    def start(self, files: int, size: int) -> None: ...
    def advance(self, files: int, size: int) -> None: ...
    def close(self) -> None: ...


class Silent:
    """No progress display (a pipeline step, a script, or stderr that is not a terminal)."""

    def start(self, files: int, size: int) -> None:
        return None

    def advance(self, files: int, size: int) -> None:
        return None

    def close(self) -> None:
        return None


class Bar:
    """A Rich progress bar: bytes, bytes/s, files done and ETA."""

    def __init__(self, description: str = "copying") -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._description = description
        self._task: Any = None
        self._files_total = 0
        self._files_done = 0

    def start(self, files: int, size: int) -> None:
        self._files_total = files
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=size, files=self._files_text())

    def advance(self, files: int, size: int) -> None:
        self._files_done += files
        self._progress.update(self._task, advance=size, files=self._files_text())

    def close(self) -> None:
        self._progress.stop()

    def _files_text(self) -> str:
        return f"{self._files_done:,}/{self._files_total:,} files"


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size} B"


def summary_lines(counters: Counters) -> list[str]:
    """The end-of-copy summary, for people (the same counters are the job's metrics)."""
    c = counters
    lines = [
        f"copied {c.files_copied:,} file{'s' if c.files_copied != 1 else ''} "
        f"({human_bytes(c.bytes_copied)}) in {c.seconds:.2f} s, {human_bytes(c.bytes_per_second)}/s",
    ]
    extras = [
        (c.files_unchanged, "unchanged (not copied)"),
        (c.files_adopted, "already copied before the resume"),
        (c.files_restarted, "restarted after the interruption"),
        (c.files_skipped, "skipped"),
        (c.files_failed, "failed"),
        (c.files_deleted, "deleted at the destination"),
    ]
    lines += [f"{count:,} {what}" for count, what in extras if count]
    return lines
