"""The copy engine: ``keel data copy``, ``keel data verify`` and ``type: data_transfer`` steps.

    prepare   resolve SRC and DST, list them, refuse bad input, plan     (prepare.py, listing.py, plan.py)
    persist   the plan as copy_items rows, before the first byte moves   (plan.py)
    move      worker threads, one transfer per file, atomic at the destination   (engine.py, transfer.py,
              local.py, sinks.py, throttle.py)
    record    statuses in batches; counters, log, manifest and skip log on the job   (records.py, progress.py)
    finish    sync deletes (only after a clean run), watermark and data version   (run.py, incremental.py)

How a file never appears half-written at its final name, per store, is in
:mod:`keel.data.copy.sinks`; how a changed source is caught, in
:mod:`keel.data.copy.transfer`; how resume avoids sending files again, in
:mod:`keel.data.copy.plan`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.data.copy.options import CopyRequest, Options
    from keel.data.copy.run import CopyResult, copy, resume
    from keel.data.copy.verification import Difference, Verification, verify

# Loaded on first use, so the worker processes (keel.data.copy.workers) import only what they run.
_HOMES = {
    "CopyRequest": "options",
    "Options": "options",
    "CopyResult": "run",
    "copy": "run",
    "resume": "run",
    "Difference": "verification",
    "Verification": "verification",
    "verify": "verification",
}
__all__ = ["CopyRequest", "CopyResult", "Difference", "Options", "Verification", "copy", "resume", "verify"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'keel.data.copy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"keel.data.copy.{_HOMES[name]}"), name)
