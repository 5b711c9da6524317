"""Every reference form Azure ML and MLflow use for a model version parses to the same thing."""

from __future__ import annotations

import pytest

from keel.errors import InvalidInput
from keel.models.references import Reference, check_alias, parse_model_reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("azureml:forest:3", Reference("forest", version="3")),
        ("forest:3", Reference("forest", version="3")),
        ("models:/forest/3", Reference("forest", version="3")),
        ("azureml:forest@latest", Reference("forest", label="latest")),
        ("models:/forest/latest", Reference("forest", label="latest")),
        ("forest", Reference("forest")),
        ("azureml:forest@champion", Reference("forest", label="champion")),
        ("models:/forest@champion", Reference("forest", label="champion")),
        ("forest@champion", Reference("forest", label="champion")),
    ],
)
def test_reference_forms(text: str, expected: Reference) -> None:
    assert parse_model_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("azureml://datastores/x/paths/m", "is a location"),
        ("models:/forest/Production", "no model stages"),
        ("for est:1", "not a model reference"),
        ("forest:1:2", "not a version"),
        ("forest@champ ion", "not an alias"),
        ("", "not a model reference"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse_model_reference(text)


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v3", "3", "a b", ""])
def test_reserved_and_malformed_aliases_are_refused(alias: str) -> None:
    with pytest.raises(InvalidInput, match="cannot be an alias"):
        check_alias(alias)
