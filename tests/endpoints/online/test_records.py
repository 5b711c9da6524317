"""Endpoints and deployments in the store (SQLite and PostgreSQL): traffic rules, sealed keys, tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from keel.endpoints.online import auth, records
from keel.endpoints.online.specs import EndpointSpec
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import online_endpoints
from keel.workspace import Workspace, WorkspaceConfig

SETTINGS: dict[str, Any] = {
    "model": {"name": "flights", "version": "1", "type": "mlflow_model"},
    "code": None,
    "instance_count": 1,
    "request": {"request_timeout_ms": 5000, "max_concurrent_requests_per_instance": 1},
}


@pytest.fixture
def space(store: Store, tmp_path: Path) -> Workspace:
    config = WorkspaceConfig(
        root=tmp_path / ".keel",
        database_url=store.engine.url.render_as_string(hide_password=False),
        artifacts_url=(tmp_path / "artifacts").as_uri(),
    )
    return Workspace(config, _store=store)


def endpoint_with(space: Workspace, *names: str, auth_mode: str = "key") -> records.Endpoint:
    endpoint = records.create_endpoint(space, EndpointSpec(name="flights", auth_mode=auth_mode))  # type: ignore[arg-type]
    for name in names:
        records.insert_deployment(space, "flights", name, SETTINGS, description=None, tags=None)
    return endpoint


def test_keys_are_sealed_at_rest_and_rotate_one_at_a_time(space: Workspace) -> None:
    endpoint_with(space)
    keys = records.credentials(space, "flights")
    with space.store.read() as conn:
        stored = conn.execute(select(online_endpoints.c.credentials)).scalar_one()
    assert keys["primaryKey"] not in stored and keys["secondaryKey"] not in stored
    assert "primaryKey" not in repr(records.get_endpoint(space, "flights"))
    records.regenerate_keys(space, "flights", "primary")
    after = records.credentials(space, "flights")
    assert after["primaryKey"] != keys["primaryKey"] and after["secondaryKey"] == keys["secondaryKey"]
    with pytest.raises(InvalidInput, match="primary or secondary"):
        records.regenerate_keys(space, "flights", "tertiary")


def test_tokens_expire_and_name_their_endpoint(space: Workspace) -> None:
    endpoint = endpoint_with(space, auth_mode="aml_token")
    opened = auth.unseal(endpoint.sealed_credentials, space.config.root)
    verifier = auth.Verifier("flights", "aml_token", opened)
    token, expires = auth.issue_token("flights", opened, now=1000.0)
    assert verifier.accepts(token.encode(), now=1000.0)
    assert not verifier.accepts(token.encode(), now=expires + 1)
    assert not auth.Verifier("other", "aml_token", opened).accepts(token.encode(), now=1000.0)
    assert not verifier.accepts(opened.primary.encode(), now=1000.0)  # keys are not tokens
    assert not verifier.accepts(b"keel1.flights.99999999999.AAAA", now=1000.0)
    with pytest.raises(Conflict, match="no keys"):
        records.regenerate_keys(space, "flights", "primary")


def test_traffic_follows_azures_rules(space: Workspace) -> None:
    endpoint_with(space, "blue", "green", "shadow")
    updated = records.update_endpoint(space, "flights", traffic={"blue": 90, "green": 10})
    assert updated.traffic == {"blue": 90, "green": 10} and updated.revision == 2
    cases = [
        ({"blue": 90, "green": 20}, None, "adds up to 110"),
        ({"purple": 100}, None, "'purple', which is not one of its deployments"),
        (None, {"shadow": 60}, "at most 50%"),
        (None, {"blue": 10}, "takes live traffic"),
        (None, {"shadow": 10, "green": 10}, "one deployment only"),
        ({"blue": 101, "green": -1}, None, "0 to 100"),
    ]
    for live, mirror, words in cases:
        with pytest.raises(InvalidInput, match=words):
            records.update_endpoint(space, "flights", traffic=live, mirror_traffic=mirror)
    assert records.get_endpoint(space, "flights").traffic == {"blue": 90, "green": 10}  # nothing half-written
    records.update_endpoint(space, "flights", mirror_traffic={"shadow": 20})
    assert records.get_endpoint(space, "flights").mirror_traffic == {"shadow": 20}


def test_traffic_cannot_be_set_at_creation_and_names_are_unique(space: Workspace) -> None:
    with pytest.raises(InvalidInput, match="only once its deployments exist"):
        records.create_endpoint(space, EndpointSpec(name="flights", traffic={"blue": 100}))
    endpoint_with(space, "blue")
    with pytest.raises(Conflict, match="already exists"):
        records.create_endpoint(space, EndpointSpec(name="flights"))
    with pytest.raises(Conflict, match="already has a deployment named 'blue'"):
        records.insert_deployment(space, "flights", "blue", SETTINGS, description=None, tags=None)


def test_a_deployment_with_traffic_cannot_be_deleted(space: Workspace) -> None:
    endpoint_with(space, "blue", "green")
    records.update_endpoint(space, "flights", traffic={"blue": 100})
    with pytest.raises(Conflict, match="takes traffic"):
        records.delete_deployment(space, "flights", "blue")
    records.delete_deployment(space, "flights", "green")
    assert [d.name for d in records.list_deployments(space, "flights")] == ["blue"]
    with pytest.raises(NotFound, match="no deployment named 'green'"):
        records.get_deployment(space, "flights", "green")
    records.delete_endpoint(space, "flights")
    with pytest.raises(NotFound, match="no online endpoint named 'flights'"):
        records.get_endpoint(space, "flights")


def test_the_gateways_report_never_overwrites_a_newer_revision(space: Workspace) -> None:
    endpoint_with(space, "blue")
    first = records.get_deployment(space, "flights", "blue")
    second = records.replace_deployment(space, "flights", "blue", SETTINGS, description=None, tags=None)
    records.report_state(space, first.id, first.revision, "ready")
    assert records.get_deployment(space, "flights", "blue").state == "pending"
    records.report_state(space, second.id, second.revision, "failed", "init() raised")
    current = records.get_deployment(space, "flights", "blue")
    assert (current.state, current.state_reason, current.served_revision) == ("failed", "init() raised", 2)
