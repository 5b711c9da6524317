"""The YAML reference names every key of the model YAML (a key added in code fails here)."""

from __future__ import annotations

from pathlib import Path

from keel.models.spec import ModelSpec

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_model_yaml_key_is_documented() -> None:
    reference = (DOCS / "reference" / "yaml.md").read_text()
    section = reference.split("## Model (`keel model create -f`)", 1)[1].split("\n## ", 1)[0]
    keys = [field.alias or name for name, field in ModelSpec.model_fields.items()]
    assert [key for key in keys if f"| `{key}` |" not in section] == []


def test_the_models_concepts_page_names_every_model_command() -> None:
    from keel.cli.model import app

    page = (DOCS / "concepts" / "models.md").read_text()
    commands = [command.name for command in app.registered_commands]
    assert commands and [c for c in commands if f"keel model {c}" not in page] == []
