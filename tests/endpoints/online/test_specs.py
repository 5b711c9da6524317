"""Azure ML's online endpoint and deployment YAML: accepted as written, wrong keys named with their line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.endpoints.online import specs
from keel.errors import InvalidInput, KeelError

REFERENCE = (Path(__file__).resolve().parents[3] / "docs" / "reference" / "yaml.md").read_text()

AZURE_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../../model-1/model/
code_configuration:
  code: ../../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 1
request_settings:
  request_timeout_ms: 3000
  max_concurrent_requests_per_instance: 2
  max_queue_wait_ms: 500
liveness_probe:
  initial_delay: 10
  period: 10
  timeout: 2
  success_threshold: 1
  failure_threshold: 30
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
    model_outputs:
      enabled: 'False'
"""


def test_azures_sample_deployment_reads_with_notices(tmp_path: Path) -> None:
    path = tmp_path / "blue.yml"
    path.write_text(AZURE_DEPLOYMENT)
    spec = specs.read_deployment(path)
    assert spec.request_settings.request_timeout_ms == 3000
    assert spec.data_collector is not None and spec.data_collector.collections["model_inputs"].enabled
    assert not spec.data_collector.collections["model_outputs"].enabled
    assert any("instance_type" in notice for notice in specs.notices(spec))
    assert any("environment" in notice for notice in specs.notices(spec))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "name: blue\nendpoint_name: e1x\nmodel: m:1\ninstance_cuont: 2\n",
            "blue.yml:4: instance_cuont: unknown field",
        ),
        ("name: blue\nendpoint_name: e1x\nmodel: m:1\nrequest_settings:\n  request_timeout_ms: 0\n", ":5:"),
        ("name: blue\nendpoint_name: e1x\n", "needs a model"),
        ("name: b_l\nendpoint_name: e1x\nmodel: m:1\n", "deployment name 'b_l' is not valid"),
        (
            "name: blue\nendpoint_name: e1x\nmodel: m:1\ndata_collector:\n  collections:\n    secrets: {}\n",
            "secrets",
        ),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_deployment_files_name_the_line_and_key(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "blue.yml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        specs.read_deployment(path)
    assert words in str(caught.value)
    assert str(path) in str(caught.value)


def test_endpoint_file_and_shares(tmp_path: Path) -> None:
    path = tmp_path / "endpoint.yml"
    path.write_text("name: my-endpoint\nauth_mode: aml_token\ndescription: flights\ntags: {team: ops}\n")
    spec = specs.read_endpoint(path)
    assert (spec.auth_mode, spec.tags) == ("aml_token", {"team": "ops"})
    path.write_text("name: my-endpoint\nauth_mode: aad_token\n")
    with pytest.raises(InvalidInput, match=r"endpoint.yml:2: auth_mode"):
        specs.read_endpoint(path)
    assert specs.parse_shares("blue=90 green=10", "--traffic") == {"blue": 90, "green": 10}
    for bad in ("blue=ninety", "blue", "blue=1 blue=2"):
        with pytest.raises(InvalidInput, match="--traffic"):
            specs.parse_shares(bad, "--traffic")


MODELS: list[type[BaseModel]] = [
    specs.EndpointSpec,
    specs.DeploymentSpec,
    specs.RequestSettings,
    specs.ProbeSettings,
    specs.DataCollectorSpec,
    specs.Collection,
    specs.CollectedData,
    specs.CodeConfiguration,
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    missing = [
        field.alias or name
        for name, field in model.model_fields.items()
        if f"`{field.alias or name}`" not in REFERENCE and f".{field.alias or name}`" not in REFERENCE
    ]
    assert missing == [], f"document these {model.__name__} keys in docs/reference/yaml.md: {missing}"


def test_deployments_that_cannot_run_are_refused_before_anything_is_recorded(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    from keel.endpoints.online.deployments import create_deployment
    from keel.endpoints.online.records import create_endpoint, list_deployments
    from keel.workspace import Workspace, resolve_workspace

    workspace = Workspace(resolve_workspace(tmp_path / ".keel"))
    create_endpoint(workspace, specs.EndpointSpec(name="flights"))
    custom = {"name": "blue", "endpoint_name": "flights", "model": str(models["custom"])}
    code = {"code": str(models["code"])}
    cases = [
        ({**custom, "model": "azureml:ghost:3"}, "ghost"),
        ({**custom, "endpoint_name": "elsewhere"}, "no online endpoint named 'elsewhere'"),
        (custom, "needs a scoring script"),
        ({**custom, "code_configuration": {**code, "scoring_script": "../score.py"}}, ".."),
        ({**custom, "code_configuration": {**code, "scoring_script": "nothere.py"}}, "no file nothere.py"),
        (
            {
                **custom,
                "code_configuration": {**code, "scoring_script": "score.py"},
                "data_collector": {
                    "collections": {"model_inputs": {"enabled": True, "data": {"path": "/etc"}}}
                },
            },
            "is not a datastore path",
        ),
    ]
    for document, words in cases:
        with pytest.raises(KeelError) as caught:
            create_deployment(workspace, specs.DeploymentSpec.model_validate(document), base=models["root"])
        assert words in str(caught.value), (document, caught.value)
    assert list_deployments(workspace, "flights") == []
    workspace.close()
