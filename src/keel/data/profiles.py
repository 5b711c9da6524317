"""Profiles of tabular data versions (being written): schema and per-column statistics."""

from __future__ import annotations

from typing import Any

from keel.data.locations import Location


def profile_of(location: Location, data_type: str) -> dict[str, Any] | None:
    """The profile of the data at ``location``, or None when it is not tabular."""
    return None
