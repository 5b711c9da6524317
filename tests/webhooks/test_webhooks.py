"""Outgoing webhooks against a real receiver on 127.0.0.1: signatures, retries, the outbox,
and the egress policy. Outbox tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from keel.errors import InvalidInput, PermissionDenied
from keel.store import Store
from keel.webhooks import check_destination, deliver_due, emit, flush, list_deliveries, webhook_settings
from keel.webhooks.config import WebhookSettings
from keel.webhooks.signing import signature, verify
from keel.workspace import Workspace, WorkspaceConfig, resolve_workspace
from tests.jobs.conftest import keel_cli
from tests.webhooks.receiver import receiver

FAST_RETRY = {"max_attempts": 4, "initial_delay_seconds": 0.1, "max_delay_seconds": 0.4}


def on_store(store: Store, tmp_path: Path, webhooks: dict[str, Any]) -> Workspace:
    """A workspace over the ``store`` fixture's database with a ``webhooks`` section."""
    config = WorkspaceConfig(
        root=tmp_path / ".keel",
        database_url=store.engine.url.render_as_string(hide_password=False),
        artifacts_url=(tmp_path / "artifacts").as_uri(),
        sections={"webhooks": webhooks},
    )
    return Workspace(config, _store=store)


def endpoint(url: str, secret: str, events: list[str] | None = None) -> dict[str, Any]:
    return {"name": "ci", "url": url, "secret": secret, "events": events or ["*"]}


# -- signing -------------------------------------------------------------------------


def test_a_signature_covers_the_body_and_the_time() -> None:
    body = b'{"type": "job.completed"}'
    header = signature("secret", body, 1_700_000_000)
    assert verify("secret", body, header, now=1_700_000_010)
    assert not verify("secret", body + b" ", header, now=1_700_000_010)
    assert not verify("other", body, header, now=1_700_000_010)
    assert not verify("secret", body, header, now=1_700_001_000)  # a replay from long ago
    assert not verify("secret", body, None) and not verify("secret", body, "t=x,v1=00")


# -- delivery ------------------------------------------------------------------------


def test_an_event_arrives_signed_with_its_type_and_delivery_id(store: Store, tmp_path: Path) -> None:
    with receiver() as got:
        workspace = on_store(store, tmp_path, {"endpoints": [endpoint(got.url, got.secret)]})
        assert emit(workspace, "job.completed", {"job": {"name": "j1", "status": "completed"}}) == 1
        assert deliver_due(workspace) == 1
        (request,) = got.wait_for(1)
    assert request.signed and request.event_type == "job.completed"
    assert request.body["type"] == "job.completed" and request.body["data"]["job"]["name"] == "j1"
    assert request.delivery == request.body["id"]
    (delivery,) = list_deliveries(workspace)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, None)


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(store: Store, tmp_path: Path) -> None:
    with receiver(fail_first=2) as got:
        hooks = {"endpoints": [endpoint(got.url, got.secret)], "retry": FAST_RETRY}
        workspace = on_store(store, tmp_path, hooks)
        emit(workspace, "approval.requested", {"approval": {"id": 1}})
        started = time.monotonic()
        assert flush(workspace, within_seconds=10) == 0
        requests = got.wait_for(3)
    assert len(requests) == 3 and len({r.delivery for r in requests}) == 1  # one delivery, three tries
    assert time.monotonic() - started >= 0.3  # 0.1 s, then 0.2 s: the delay doubled
    (delivery,) = list_deliveries(workspace)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


def test_a_delivery_out_of_attempts_fails_and_says_why(store: Store, tmp_path: Path) -> None:
    with receiver(fail_first=100) as got:
        hooks = {"endpoints": [endpoint(got.url, got.secret)], "retry": FAST_RETRY}
        workspace = on_store(store, tmp_path, hooks)
        emit(workspace, "job.failed", {"job": {"name": "j"}})
        flush(workspace, within_seconds=10)
    (delivery,) = list_deliveries(workspace)
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert delivery.last_error is not None and "HTTP 500" in delivery.last_error
    assert "/hook" not in delivery.last_error  # a URL's path can hold a secret; errors name the origin


def test_only_subscribed_events_are_queued(store: Store, tmp_path: Path) -> None:
    hooks = {"endpoints": [endpoint("http://127.0.0.1:9/x", "s", ["approval.*", "job.failed"])]}
    workspace = on_store(store, tmp_path, hooks)
    assert emit(workspace, "job.completed", {}) == 0
    assert emit(workspace, "job.failed", {}) == 1 and emit(workspace, "approval.decided", {}) == 1


def test_the_outbox_survives_the_process_that_queued(store: Store, tmp_path: Path) -> None:
    """Queued, then the process is gone: another process (a new workspace object) sends it."""
    with receiver() as got:
        hooks = {"endpoints": [endpoint(got.url, got.secret)]}
        emit(on_store(store, tmp_path, hooks), "job.paused", {"job": {"name": "j"}})
        later = Workspace(dataclasses.replace(on_store(store, tmp_path, hooks).config), _store=store)
        assert deliver_due(later) == 1
        assert got.wait_for(1)[0].event_type == "job.paused"
    assert deliver_due(later) == 0  # delivered once, not again


def test_two_senders_never_send_one_delivery_twice(store: Store, tmp_path: Path) -> None:
    import threading

    with receiver() as got:
        workspace = on_store(store, tmp_path, {"endpoints": [endpoint(got.url, got.secret)]})
        for number in range(30):
            emit(workspace, "job.completed", {"n": number})
        senders = [threading.Thread(target=deliver_due, args=(workspace,)) for _ in range(3)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        requests = got.wait_for(30)
    assert sorted(r.body["data"]["n"] for r in requests) == list(range(30))


# -- egress policy -------------------------------------------------------------------


def settings(**fields: Any) -> WebhookSettings:
    return webhook_settings({"webhooks": fields})


def resolving_to(*addresses: str) -> Any:
    """DNS answering with these addresses (no real name resolves to a private address here)."""
    return lambda _host, _port: list(addresses)


def test_loopback_is_always_allowed_and_checked_addresses_are_kept() -> None:
    found = check_destination("http://localhost:8080/hook?x=1", settings())
    assert {"127.0.0.1", "::1"} & set(found.addresses) and found.target == "/hook?x=1"
    assert check_destination("http://127.0.0.1/", settings()).addresses == ("127.0.0.1",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "webhook host hooks.example.com is not allowed"),
        ("http://10.1.2.3/x", "10.1.2.3, a private or reserved address, which is refused"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254, a link-local address"),
        ("http://[fd00::1]/x", "a private or reserved address"),
        ("http://[::ffff:192.168.0.1]/x", "192.168.0.1, a private or reserved address"),
        ("http://8.8.8.8/x", "webhook address 8.8.8.8 is not allowed"),
    ],
)
def test_hosts_not_listed_are_refused(url: str, message: str) -> None:
    with pytest.raises(PermissionDenied, match=message.replace("[", r"\[").replace(".", r"\.")):
        check_destination(url, settings())


def test_a_listed_name_is_checked_by_the_address_it_resolves_to() -> None:
    listed = settings(allowed_hosts=["hooks.example.com"])
    found = check_destination("https://hooks.example.com/x", listed, resolve=resolving_to("93.184.216.34"))
    assert found.addresses == ("93.184.216.34",) and found.port == 443
    with pytest.raises(PermissionDenied, match=r"hooks\.example\.com is 10\.0\.0\.7"):
        check_destination("https://hooks.example.com/x", listed, resolve=resolving_to("10.0.0.7"))
    with pytest.raises(PermissionDenied, match="link-local"):  # one bad answer refuses the host
        check_destination(
            "https://hooks.example.com/x", listed, resolve=resolving_to("93.184.216.34", "169.254.1.1")
        )


def test_private_ranges_are_allowed_once_listed() -> None:
    listed = settings(allowed_hosts=["internal.corp", "10.0.0.0/8"])
    assert check_destination("http://10.1.2.3/x", listed).addresses == ("10.1.2.3",)
    found = check_destination("http://internal.corp/x", listed, resolve=resolving_to("10.20.30.40"))
    assert found.addresses == ("10.20.30.40",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://localhost/x", "must be http:// or https://"),
        ("http://user:pw@localhost/x", "cannot carry a user name or password"),
        ("http:///x", "needs a host"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_destination(url, settings())


def test_a_refused_host_fails_its_delivery_without_sending(store: Store, tmp_path: Path) -> None:
    hooks = {"endpoints": [endpoint("http://10.9.8.7:8080/hook", "s")], "retry": FAST_RETRY}
    workspace = on_store(store, tmp_path, hooks)
    emit(workspace, "job.completed", {})
    deliver_due(workspace)
    (delivery,) = list_deliveries(workspace)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "10.9.8.7, a private or reserved address, which is refused" in (delivery.last_error or "")


# -- configuration and the CLI -------------------------------------------------------


ONE = "webhooks: {endpoints: [{name: a, url: 'http://x'"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("webhooks: [1]", "webhooks: expected a mapping"),
        ("webhooks: {endpoint: []}", "webhooks.endpoint: unknown setting"),
        (ONE.replace("http", "ftp") + ", secret: s}]}", "webhooks.endpoints[0].url: a webhook URL starts"),
        (ONE + ", secret: s, events: [job.done]}]}", "'job.done' matches no event"),
        (ONE + "}]}", "webhooks.endpoints[0].secret: Field required"),
    ],
)
def test_a_bad_webhooks_section_names_the_file_and_field(tmp_path: Path, section: str, message: str) -> None:
    (tmp_path / "keel.yaml").write_text(section + "\n")
    config = resolve_workspace(cwd=tmp_path, environ={})
    with pytest.raises(InvalidInput, match=r"keel\.yaml: ") as raised:
        webhook_settings(config.sections, config.source)
    assert message in str(raised.value)


def test_the_secret_comes_from_the_environment_through_keel_yaml(tmp_path: Path) -> None:
    (tmp_path / "keel.yaml").write_text(
        "webhooks:\n  endpoints:\n    - {name: ci, url: 'http://localhost/x', secret: '${HOOK_SECRET}'}\n"
    )
    config = resolve_workspace(cwd=tmp_path, environ={"HOOK_SECRET": "from-env"})
    assert webhook_settings(config.sections).endpoints[0].secret == "from-env"


def test_cli_registers_lists_and_deletes_endpoints(workspace: Workspace) -> None:
    with receiver() as got:
        created = keel_cli(workspace, "webhook", "create", "ci", "--url", got.url, "--event", "job.*")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.split("signing secret (shown once): ")[1].split()[0]
        got.secret = secret
        emit(workspace, "job.completed", {"job": {"name": "x"}})
        emit(workspace, "approval.requested", {})  # not subscribed
        delivered = keel_cli(workspace, "webhook", "deliver")
        assert delivered.returncode == 0 and "nothing pending" in delivered.stdout
        assert got.events() == ["job.completed"]
    listed = keel_cli(workspace, "webhook", "list")
    assert "ci" in listed.stdout and secret not in listed.stdout
    shown = keel_cli(workspace, "webhook", "deliveries", "-o", "json")
    assert '"status": "delivered"' in shown.stdout
    assert keel_cli(workspace, "webhook", "delete", "ci").returncode == 0
    missing = keel_cli(workspace, "webhook", "delete", "ci")
    assert missing.returncode == 1 and "no registered webhook named 'ci'" in missing.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1, a private or reserved address, which is refused"),
        ("http://169.254.169.254/", "link-local"),
        ("http://hooks.example.com/", "not allowed"),
    ],
)
def test_cli_refuses_a_host_the_workspace_does_not_allow(
    workspace: Workspace, url: str, message: str
) -> None:
    result = keel_cli(workspace, "webhook", "create", "bad", "--url", url)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert "bad" not in keel_cli(workspace, "webhook", "list").stdout
