"""One signed POST to a checked destination, connecting only to the addresses that were checked."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from keel import __version__
from keel.webhooks.egress import Destination
from keel.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature


@dataclass(frozen=True)
class Sent:
    ok: bool
    detail: str  # the status line, or why nothing was answered


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a fixed address, presenting the URL's host name in the Host header."""

    def __init__(self, destination: Destination, address: str, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address; the certificate is checked against the URL's host name."""

    def __init__(self, destination: Destination, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(destination.host, destination.port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(
    destination: Destination,
    body: bytes,
    *,
    secret: str,
    event_type: str,
    delivery_id: str,
    timestamp: int,
    timeout: float,
) -> Sent:
    """POST ``body``; a 2xx answer is success, anything else (or no answer) is not."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"keel/{__version__}",
        SIGNATURE_HEADER: signature(secret, body, timestamp),
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
    }
    failure = "no address to try"
    for address in destination.addresses:
        kind = _PinnedHTTPS if destination.scheme == "https" else _PinnedHTTP
        connection = kind(destination, address, timeout)
        try:
            connection.request("POST", destination.target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)
            line = f"HTTP {response.status} {response.reason}".strip()
            return Sent(200 <= response.status < 300, line)
        except (OSError, http.client.HTTPException) as exc:
            failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            connection.close()
    return Sent(False, failure)
