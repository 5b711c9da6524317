"""The ``webhooks:`` section of keel.yaml: endpoints, the hosts they may reach, and retries.

    webhooks:
      allowed_hosts: [hooks.example.com, 10.20.0.0/16]
      endpoints:
        - name: ci
          url: https://hooks.example.com/keel
          secret: ${CI_WEBHOOK_SECRET}
          events: ["job.*", approval.requested]
      retry: {max_attempts: 8, initial_delay_seconds: 5, max_delay_seconds: 900}
      timeout_seconds: 10

Endpoints may also be registered with ``keel webhook create`` (kept in the store);
the allowed hosts are a policy of the workspace and live only here.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keel.errors import InvalidInput

EVENT_TYPES = (
    "job.running",
    "job.paused",
    "job.completed",
    "job.failed",
    "job.canceled",
    "approval.requested",
    "approval.decided",
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    """Exponential backoff: the delay doubles after each failed attempt, up to the maximum."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial_delay_seconds: float = Field(default=5.0, ge=0)
    max_delay_seconds: float = Field(default=900.0, ge=0)

    def delay_after(self, attempts: int) -> float:
        return float(min(self.initial_delay_seconds * 2 ** max(attempts - 1, 0), self.max_delay_seconds))


class Endpoint(_Strict):
    """Where events go, signed with ``secret``; ``events`` are patterns such as ``job.*``."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    url: str
    secret: str = Field(min_length=1, repr=False)
    events: tuple[str, ...] = ("*",)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a webhook URL starts with http:// or https://")
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_event_patterns(value)
        return value

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events)


class WebhookSettings(_Strict):
    allowed_hosts: tuple[str, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    retry: Retry = Field(default_factory=Retry)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(host.strip().lower().rstrip(".") for host in value if host.strip())

    def allowed_names(self) -> frozenset[str]:
        return frozenset(host for host in self.allowed_hosts if _network(host) is None)

    def allowed_networks(self) -> tuple[Network, ...]:
        return tuple(net for host in self.allowed_hosts if (net := _network(host)) is not None)

    def endpoint(self, name: str) -> Endpoint | None:
        return next((endpoint for endpoint in self.endpoints if endpoint.name == name), None)


def check_event_patterns(patterns: tuple[str, ...] | list[str]) -> None:
    """Each pattern must match at least one event Keel sends (a typo would silently match none)."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(event, pattern) for event in EVENT_TYPES):
            raise ValueError(f"{pattern!r} matches no event; events are {', '.join(EVENT_TYPES)}")


def _network(host: str) -> Network | None:
    try:
        return ipaddress.ip_network(host, strict=False)
    except ValueError:
        return None


def webhook_settings(sections: Mapping[str, Any], source: str = "keel.yaml") -> WebhookSettings:
    """The ``webhooks`` section, checked; problems name the file and the field."""
    raw = sections.get("webhooks")
    if raw is None:
        return WebhookSettings()
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source}: webhooks: expected a mapping (allowed_hosts, endpoints, retry)")
    try:
        settings = WebhookSettings.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = "webhooks" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting"
        raise InvalidInput(f"{source}: {field}: {message}") from None
    names = [endpoint.name for endpoint in settings.endpoints]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise InvalidInput(f"{source}: webhooks.endpoints: the name {duplicate!r} is used twice")
    return settings
