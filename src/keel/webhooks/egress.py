"""Where a webhook may be sent: loopback, plus the hosts the workspace lists.

A host name must be listed (``webhooks.allowed_hosts``) unless it is ``localhost``.
The name is then resolved and every address it resolves to is checked, because a
listed name can point anywhere: loopback is fine, a public address is fine for a
listed name, and a private, link-local, shared or reserved address (a cloud
metadata service, an internal admin page) is refused unless that address or a range
holding it is listed too. The request is then sent to the addresses that were
checked, never to a second lookup of the name, so DNS cannot change the answer
between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.errors import InvalidInput, PermissionDenied, Unavailable
from keel.webhooks.config import WebhookSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Destination:
    """A checked URL: the name to present (Host header, TLS) and the addresses to connect to."""

    scheme: str
    host: str
    port: int
    target: str  # path and query
    addresses: tuple[str, ...]

    @property
    def origin(self) -> str:
        """What messages may name: scheme, host and port (a URL's path can hold a secret)."""
        return f"{self.scheme}://{self.host}:{self.port}"


def origin_of(url: str) -> str:
    """The scheme, host and port of ``url``, safe to print."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def resolve_addresses(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unavailable(f"cannot resolve webhook host {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def check_destination(
    url: str, settings: WebhookSettings, *, resolve: Resolver = resolve_addresses
) -> Destination:
    """Check ``url`` against the workspace's egress policy; raises PermissionDenied if refused."""
    scheme, host, port, target = _parts(url)
    literal = _address(host)
    listed = host in settings.allowed_names() or host == "localhost"
    if literal is None and not listed:
        raise PermissionDenied(
            f"webhook host {host} is not allowed",
            hint="list it under webhooks.allowed_hosts in keel.yaml (loopback is always allowed)",
        )
    addresses = [literal] if literal is not None else [_address(a) for a in resolve(host, port)]
    checked: list[str] = []
    for address in addresses:
        if address is None:
            continue
        _check_address(host, address, settings, named=literal is None)
        checked.append(str(address))
    if not checked:
        raise Unavailable(f"webhook host {host} resolves to no address")
    return Destination(scheme, host, port, target, tuple(checked))


def _parts(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"not a valid webhook URL: {exc}") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise InvalidInput(f"a webhook URL must be http:// or https://, not {parts.scheme or 'nothing'}")
    if not parts.hostname:
        raise InvalidInput("a webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("a webhook URL cannot carry a user name or password; the body is signed instead")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[parts.scheme], target


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _check_address(host: str, address: Address, settings: WebhookSettings, *, named: bool) -> None:
    if address.is_loopback or any(address in network for network in settings.allowed_networks()):
        return
    if not address.is_global:
        kind = "link-local" if address.is_link_local else "private or reserved"
        raise PermissionDenied(
            f"webhook host {host} is {address}, a {kind} address, which is refused",
            hint="list that address or its range under webhooks.allowed_hosts in keel.yaml to allow it",
        )
    if not named:
        raise PermissionDenied(
            f"webhook address {address} is not allowed",
            hint="list it under webhooks.allowed_hosts in keel.yaml",
        )


def describe(exc: Any) -> str:
    """One line for a delivery's last error."""
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
