"""Batch endpoint and deployment YAML: Azure ML's shapes, defaults, located errors, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.endpoints.batch.specs import (
    Settings,
    effective_settings,
    load_deployment,
    load_endpoint,
    override_settings,
)
from keel.errors import InvalidInput
from keel.specs.source import SpecError
from tests.endpoints.batch.conftest import write

LEGACY = """
$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
endpoint_name: heart-classifier-batch
name: classifier-xgboost-mlflow
description: A heart condition classifier based on XGBoost
model: azureml:heart-classifier-mlflow@latest
compute: azureml:batch-cluster
resources:
  instance_count: 2
max_concurrency_per_instance: 2
mini_batch_size: 2
output_action: append_row
output_file_name: predictions.csv
retry_settings:
  max_retries: 3
  timeout: 300
error_threshold: -1
logging_level: info
"""

NESTED = """
$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
endpoint_name: mnist-batch
name: mnist-torch-dpl
type: model
model: azureml:mnist-classifier-torch@latest
code_configuration:
  code: code
  scoring_script: batch_driver.py
environment:
  name: batch-torch-py38
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  conda_file: environment/conda.yaml
compute: azureml:batch-cluster
resources:
  instance_count: 1
settings:
  max_concurrency_per_instance: 2
  mini_batch_size: 10
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 3
    timeout: 30
  error_threshold: -1
  logging_level: info
  environment_variables:
    MODE: batch
    RETRIES: 2
"""


def test_azure_examples_load_in_both_forms(tmp_path: Path) -> None:
    legacy = load_deployment(write(tmp_path / "legacy.yml", LEGACY))
    settings = effective_settings(legacy.spec)
    assert settings == Settings(
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        instance_count=2,
        error_threshold=-1,
        max_retries=3,
        timeout=300.0,
        output_action="append_row",
        output_file_name="predictions.csv",
        logging_level="info",
    )
    assert settings.workers == 4
    assert legacy.notices == ["compute azureml:batch-cluster runs as local worker processes"]
    nested = load_deployment(write(tmp_path / "nested.yml", NESTED))
    settings = effective_settings(nested.spec)
    assert (settings.mini_batch_size, settings.workers, settings.timeout) == (10, 2, 30.0)
    assert settings.environment_variables == {"MODE": "batch", "RETRIES": "2"}
    assert (
        "environment mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest runs in this interpreter"
        in (nested.notices)
    )


def test_defaults_are_azures(tmp_path: Path) -> None:
    loaded = load_deployment(write(tmp_path / "d.yml", "name: plain\nendpoint_name: e1x\nmodel: m:1\n"))
    settings = effective_settings(loaded.spec)
    assert settings == Settings()
    assert (settings.max_retries, settings.timeout, settings.error_threshold) == (3, 30.0, -1)
    assert (settings.output_action, settings.output_file_name, settings.workers) == (
        "append_row",
        "predictions.csv",
        1,
    )


def test_endpoint_file(tmp_path: Path) -> None:
    loaded = load_endpoint(
        write(
            tmp_path / "e.yml",
            "name: heart-batch\ndescription: hearts\nauth_mode: aad_token\n"
            "defaults:\n  deployment_name: xgb\n",
        )
    )
    assert loaded.spec.name == "heart-batch" and loaded.spec.defaults.deployment_name == "xgb"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nminibatch_size: 3\n",
            "d.yml:4: minibatch_size: unknown field",
        ),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nmini_batch_size: 0\n",
            "d.yml:4: mini_batch_size: Input should be greater",
        ),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nsettings:\n  output_file_name: ../x.csv\n",
            "d.yml:5: settings.output_file_name: output_file_name must be a plain file name",
        ),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nsettings:\n  logging_level: loud\n",
            "d.yml:5: settings.logging_level: logging_level must be one of warning, info, debug",
        ),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nsettings:\n  output_action: append_rows\n",
            "d.yml:5: settings.output_action: Input should be 'append_row' or 'summary_only'",
        ),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nmini_batch_size: 3\n"
            "settings:\n  mini_batch_size: 4\n",
            "d.yml:4: mini_batch_size: mini_batch_size is given both at the top level and under settings",
        ),
        (
            "name: a1b\nendpoint_name: e1x\ntype: pipeline\ncomponent: c:1\n",
            "d.yml:3: type: pipeline component deployments",
        ),
        ("name: a1b\nendpoint_name: e1x\n", "d.yml:1: 'model' is required"),
        (
            "name: a1b\nendpoint_name: e1x\nmodel: m:1\nretry_settings:\n  timeout: -5\n",
            "d.yml:5: retry_settings.timeout",
        ),
    ],
)
def test_bad_deployment_files_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SpecError) as raised:
        load_deployment(write(tmp_path / "d.yml", text))
    message = str(raised.value)
    assert message.startswith(str(tmp_path)), message
    assert expected in message, message


def test_set_overrides_the_file(tmp_path: Path) -> None:
    loaded = load_deployment(
        write(tmp_path / "d.yml", "name: a1b\nendpoint_name: e1x\nmodel: m:1\n"),
        ["settings.mini_batch_size=7", "resources.instance_count=3"],
    )
    settings = effective_settings(loaded.spec)
    assert (settings.mini_batch_size, settings.instance_count) == (7, 3)


def test_invoke_overrides_are_checked_like_the_file() -> None:
    base = Settings(mini_batch_size=10, environment_variables={"A": "1"})
    changed = override_settings(
        base,
        [
            "mini_batch_size=100",
            "settings.error_threshold=5",
            "retry_settings.timeout=2.5",
            "max_retries=0",
            "resources.instance_count=2",
            "max_concurrency_per_instance=2",
            "environment_variables.B=two",
            "output_file_name=out.parquet",
        ],
    )
    assert changed == Settings(
        mini_batch_size=100,
        max_concurrency_per_instance=2,
        instance_count=2,
        error_threshold=5,
        max_retries=0,
        timeout=2.5,
        output_file_name="out.parquet",
        environment_variables={"A": "1", "B": "two"},
    )
    assert changed.workers == 4
    with pytest.raises(
        InvalidInput, match=r"--set mini_batch_size: Input should be greater than or equal to 1"
    ):
        override_settings(base, ["mini_batch_size=0"])
    with pytest.raises(InvalidInput, match=r"--set model: not a deployment setting"):
        override_settings(base, ["model=other:2"])
    with pytest.raises(InvalidInput, match="expected key=value"):
        override_settings(base, ["mini_batch_size"])
