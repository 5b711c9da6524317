"""The YAML reference names every key the spec models accept (a key added in code fails here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.data import assets, datastore_specs
from keel.specs import models

REFERENCE = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "yaml.md").read_text()
MODELS = [
    models.CommandJob,
    models.CommandComponent,
    models.PipelineJob,
    models.PipelineComponent,
    models.PipelineSettings,
    models.PipelineStep,
    models.SweepJob,
    models.SweepLimits,
    models.EarlyTermination,
    models.SearchParam,
    models.SamplingAlgorithm,
    models.Objective,
    models.Trial,
    models.InputDecl,
    models.OutputDecl,
    models.Retry,
    models.Limits,
    models.DataTransferJob,
    models.CopyOptions,
    models.TransformJob,
    models.ApprovalStep,
    datastore_specs.AzureBlobSpec,
    datastore_specs.BlobCredentials,
    datastore_specs.S3Spec,
    datastore_specs.S3Credentials,
    datastore_specs.LocalSpec,
    assets.DataSpec,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    missing = [
        field.alias or name
        for name, field in model.model_fields.items()
        if f"`{field.alias or name}`" not in REFERENCE
        and f".{field.alias or name}`" not in REFERENCE
        and f", {field.alias or name}`" not in REFERENCE
        and f"`{field.alias or name}," not in REFERENCE
    ]
    assert missing == [], f"document these {model.__name__} keys in docs/reference/yaml.md: {missing}"
