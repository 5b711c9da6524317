"""The YAML reference names every key the batch endpoint and deployment models accept."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.endpoints.batch import specs

REFERENCE = (Path(__file__).resolve().parents[3] / "docs" / "reference" / "yaml.md").read_text()
SECTION = REFERENCE[REFERENCE.index("## Batch endpoint") : REFERENCE.index("## Expressions")]
MODELS = [
    specs.EndpointSpec,
    specs.Defaults,
    specs.DeploymentSpec,
    specs.DeploymentSettings,
    specs.RetrySettings,
    specs.CodeConfiguration,
    specs.Resources,
    specs.InlineModel,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented_in_the_batch_sections(model: type[BaseModel]) -> None:
    missing = [
        field.alias or name
        for name, field in model.model_fields.items()
        if f"`{field.alias or name}`" not in SECTION
        and f".{field.alias or name}`" not in SECTION
        and f", {field.alias or name}" not in SECTION
        and f"{{{field.alias or name}," not in SECTION
    ]
    assert missing == [], f"document these {model.__name__} keys in docs/reference/yaml.md: {missing}"
