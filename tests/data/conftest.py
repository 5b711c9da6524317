"""Data tests share the Azurite emulator (see tests/azurite.py)."""

from __future__ import annotations

from tests.azurite import azurite

__all__ = ["azurite"]
