"""Reliability tests run Keel in real child processes against a real workspace in tmp_path."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def child_env() -> dict[str, str]:
    """This environment minus Keel's variables, so children use the workspace we give them."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KEEL_")}
