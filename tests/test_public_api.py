"""The public SDK surface is curated: every exported name resolves, nothing else leaks."""

from __future__ import annotations

import subprocess
import sys

import keel


def test_all_is_sorted_complete_and_importable() -> None:
    assert keel.__all__ == sorted(keel.__all__)
    assert set(keel.__all__) == set(keel._EXPORTS)
    for name in keel.__all__:
        assert getattr(keel, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    try:
        keel.not_a_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "not_a_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_importing_keel_is_light() -> None:
    """`import keel` must not pull in SQLAlchemy: the CLI's start-up time depends on it."""
    code = "import sys, keel; print('sqlalchemy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
