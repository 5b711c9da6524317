"""A bandwidth limit shared by every transfer of a copy: a token bucket in one lock."""

from __future__ import annotations

import threading
import time

# Chunks are cut to a tenth of a second's worth of bytes, so the limit holds smoothly.
_SLICES_PER_SECOND = 10


class Throttle:
    """Paces writers to ``rate`` bytes per second in total, whatever the number of threads."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    @property
    def chunk(self) -> int:
        """The most bytes to move between two calls to :meth:`take`."""
        return max(64 * 1024, self.rate // _SLICES_PER_SECOND)

    def take(self, size: int) -> None:
        """Wait until ``size`` more bytes may go."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at)
            self._free_at = start + size / self.rate
        if start > now:
            time.sleep(start - now)


def limited(chunk: int, throttle: Throttle | None) -> int:
    return chunk if throttle is None else min(chunk, throttle.chunk)
