"""The YAML reference names every key the schedule models accept."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.schedules.spec import MODELS

REFERENCE = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "yaml.md").read_text()
SECTION = REFERENCE[REFERENCE.index("## Schedule") :]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_schedule_key_is_documented(model: type[BaseModel]) -> None:
    missing = [
        key
        for name, field in model.model_fields.items()
        for key in {field.alias or name, name} - {"schema_"}
        if not any(form in SECTION for form in (f"`{key}`", f".{key}`", f"`{key} ", f"`{key}:"))
    ]
    assert missing == [], f"document these {model.__name__} keys in docs/reference/yaml.md: {missing}"
