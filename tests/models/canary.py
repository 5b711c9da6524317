"""A model whose unpickling leaves a mark, to prove what Keel did (not) unpickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Canary:
    """Unpickling calls :func:`hatch`, which writes the marker file named in the pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (hatch, (self.marker,))

    def predict(self, frame: Any) -> list[int]:
        return [1] * len(frame)


def hatch(marker: str) -> Canary:
    Path(marker).write_text("unpickled\n")
    return Canary(marker)
