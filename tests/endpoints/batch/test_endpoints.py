"""Endpoints and deployments on SQLite and PostgreSQL: models through the registry, code
snapshotted, defaults, and the bad definitions that must be refused before anything is recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from keel.endpoints.batch.endpoints import (
    create_deployment,
    create_endpoint,
    delete_deployment,
    delete_endpoint,
    deployment_for,
    get_deployment,
    get_endpoint,
    list_deployments,
    list_endpoints,
    update_endpoint,
)
from keel.endpoints.batch.specs import load_deployment, load_endpoint
from keel.errors import Conflict, InvalidInput, NotFound
from keel.models.registry import Request, register
from keel.store.schema import batch_deployments, model_versions
from keel.workspace import Workspace
from tests.endpoints.batch.conftest import SCORE_ROWS, Models, deployment_file, endpoint_file, write


def _deploy(space: Workspace, path: Path, **options: object) -> object:
    return create_deployment(space, load_deployment(path), **options)  # type: ignore[arg-type]


def test_endpoint_and_deployments_lifecycle(space: Workspace, tmp_path: Path, models: Models) -> None:
    endpoint = create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    assert (endpoint.name, endpoint.description, endpoint.deployments) == (
        "flights-batch",
        "scores flights",
        (),
    )
    with pytest.raises(Conflict, match="already exists"):
        create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    first = _deploy(space, deployment_file(tmp_path, "nocode", models.mlflow_dir, mini_batch_size=100))
    assert get_endpoint(space, "flights-batch").default_deployment == "nocode"  # the first is the default
    assert first.model_name.startswith("anonymous-") and first.code_digest is None  # type: ignore[attr-defined]
    scripted = _deploy(space, deployment_file(tmp_path, "scripted", models.custom_dir, script=SCORE_ROWS))
    assert scripted.scoring_script == "scripted.py" and scripted.code_digest.startswith("sha256:")  # type: ignore[attr-defined]
    assert [d.name for d in list_deployments(space, "flights-batch")] == ["nocode", "scripted"]
    assert deployment_for(space, "flights-batch", None).name == "nocode"
    update_endpoint(space, "flights-batch", default_deployment="scripted", tags={"team": "ops"})
    found = get_endpoint(space, "flights-batch")
    assert (found.default_deployment, found.tags) == ("scripted", {"team": "ops"})
    assert deployment_for(space, "flights-batch", None).name == "scripted"
    assert [e.name for e in list_endpoints(space)] == ["flights-batch"]
    with pytest.raises(Conflict, match="'scripted' is the default deployment"):
        delete_deployment(space, "flights-batch", "scripted")
    delete_deployment(space, "flights-batch", "nocode")
    delete_deployment(space, "flights-batch", "scripted")  # the last one may go
    assert get_endpoint(space, "flights-batch").default_deployment is None
    with pytest.raises(NotFound, match="has no deployments"):
        deployment_for(space, "flights-batch", None)
    delete_endpoint(space, "flights-batch")
    with pytest.raises(NotFound, match="no batch endpoint named 'flights-batch'"):
        get_endpoint(space, "flights-batch")


def test_a_registered_model_is_referenced_and_the_code_is_frozen(
    space: Workspace, tmp_path: Path, models: Models
) -> None:
    from keel.jobs.snapshot import materialize

    register(space, Request(name="delays", path=str(models.mlflow_dir)))
    register(space, Request(name="delays", path=str(models.custom_dir), type="custom_model"))
    create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    deployment = _deploy(space, deployment_file(tmp_path, "pinned", "azureml:delays:1", script=SCORE_ROWS))
    assert (deployment.model_name, deployment.model_version) == ("delays", "1")  # type: ignore[attr-defined]
    latest = _deploy(space, deployment_file(tmp_path, "latest", "azureml:delays@latest", script=SCORE_ROWS))
    assert latest.model_version == "2"  # type: ignore[attr-defined]  # resolved once, at creation
    (tmp_path / "src" / "pinned.py").write_text("changed after deployment\n")
    frozen = tmp_path / "frozen"
    materialize(deployment.code_digest, space.artifacts, frozen, tmp_path / "cache")  # type: ignore[attr-defined]
    assert "def run(mini_batch)" in (frozen / "pinned.py").read_text()


@pytest.mark.parametrize(
    ("model", "script", "expected", "kind"),
    [
        ("azureml:nothing:1", None, "no model named 'nothing'", NotFound),
        ("delays:9", None, "no version 9 of model delays", NotFound),
        ("azureml:delays@champion", None, "model delays has no alias @champion", NotFound),
        (
            "just-a-name",
            None,
            "'just-a-name' is neither a local path nor a registered model reference",
            InvalidInput,
        ),
        (
            "CUSTOM",
            None,
            "is not an MLflow model (no MLmodel file), so it needs a scoring script",
            InvalidInput,
        ),
        ("delays:2", None, None, None),
        (
            "CUSTOM",
            "def init():\n    pass\n",
            "defines no run(); a batch scoring script needs init() and run",
            InvalidInput,
        ),
        ("CUSTOM", "def run(x):\n    return x\n", "defines no init()", InvalidInput),
        ("CUSTOM", "def init(:\n", "is not valid Python", InvalidInput),
    ],
)
def test_bad_deployments_are_refused_and_nothing_is_recorded(
    space: Workspace,
    tmp_path: Path,
    models: Models,
    model: str,
    script: str | None,
    expected: str | None,
    kind: type | None,
) -> None:
    register(space, Request(name="delays", path=str(models.mlflow_dir)))
    register(space, Request(name="delays", path=str(models.custom_dir), type="custom_model"))  # version 2
    create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    if expected is None:  # a registered custom_model without a script
        model, expected, kind = (
            "delays:2",
            "model delays:2 is a custom_model, which needs a scoring",
            InvalidInput,
        )
    assert kind is not None
    path = deployment_file(
        tmp_path, "broken", models.custom_dir if model == "CUSTOM" else model, script=script
    )
    with pytest.raises(kind, match=re.escape(expected)):
        _deploy(space, path)
    with space.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(batch_deployments)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 2  # none added


def test_names_and_missing_files_are_checked(space: Workspace, tmp_path: Path, models: Models) -> None:
    with pytest.raises(InvalidInput, match="batch endpoint name 'x' is not valid"):
        create_endpoint(space, load_endpoint(write(tmp_path / "e.yml", "name: x\n")))
    create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    missing_code = write(
        tmp_path / "d.yml",
        f"name: nocode\nendpoint_name: flights-batch\nmodel: {models.mlflow_dir}\n"
        "code_configuration: {code: ./nowhere, scoring_script: score.py}\n",
    )
    with pytest.raises(
        InvalidInput, match=r"d.yml:4: code_configuration.code: the code folder .*nowhere does not exist"
    ):
        _deploy(space, missing_code)
    write(tmp_path / "src" / "other.py", SCORE_ROWS)
    missing_script = write(
        tmp_path / "d.yml",
        f"name: nocode\nendpoint_name: flights-batch\nmodel: {models.mlflow_dir}\n"
        "code_configuration: {code: ./src, scoring_script: ../score.py}\n",
    )
    with pytest.raises(InvalidInput, match=r"code_configuration.scoring_script"):
        _deploy(space, missing_script)
    elsewhere = write(tmp_path / "d.yml", "name: nocode\nendpoint_name: elsewhere\nmodel: m:1\n")
    with pytest.raises(NotFound, match="no batch endpoint named 'elsewhere'"):
        _deploy(space, elsewhere)
    with pytest.raises(NotFound, match="has no deployment 'ghost'"):
        get_deployment(space, "flights-batch", "ghost")
    with pytest.raises(NotFound, match="has no deployment 'ghost'"):
        update_endpoint(space, "flights-batch", default_deployment="ghost")


def test_update_replaces_a_deployment_in_place(space: Workspace, tmp_path: Path, models: Models) -> None:
    create_endpoint(space, load_endpoint(endpoint_file(tmp_path)))
    _deploy(space, deployment_file(tmp_path, "nocode", models.mlflow_dir, mini_batch_size=100))
    with pytest.raises(Conflict, match="already has a deployment 'nocode'"):
        _deploy(space, deployment_file(tmp_path, "nocode", models.mlflow_dir))
    changed = _deploy(
        space, deployment_file(tmp_path, "nocode", models.mlflow_dir, mini_batch_size=7), replace=True
    )
    assert changed.settings.mini_batch_size == 7  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match="no deployment 'other' to update"):
        _deploy(space, deployment_file(tmp_path, "other", models.mlflow_dir), replace=True)
