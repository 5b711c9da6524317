"""The ``shop`` project the Python SDK tests use, imported as a job would import it.

Its folder, ``python_project``, is the components' ``code`` (the folder holding the
top-level package ``shop``), so it goes on ``sys.path`` here just as the working
directory does for ``python -m keel.function``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from keel.specs import ResolvedJob

PROJECT = Path(__file__).parent / "python_project"
ORDERS = PROJECT / "data" / "orders.csv"
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from shop import components, pipelines  # noqa: E402

__all__ = ["ORDERS", "PROJECT", "comparable", "components", "pipelines"]


def comparable(job: ResolvedJob) -> Any:
    """The job as JSON, without where it came from (``source``, ``source_file``)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("source", "source_file")}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return strip(job.model_dump(mode="json"))
