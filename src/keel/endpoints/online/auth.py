"""Endpoint credentials: two rotatable keys, or short-lived signed tokens.

As in Azure ML, an endpoint's ``auth_mode`` is ``key`` (a primary and a secondary
key, either accepted, each regenerated on its own so clients can move over without
an outage) or ``aml_token`` (a token that expires, signed with a per-endpoint
secret). Both travel as ``Authorization: Bearer <credential>``. The keys and the
signing secret are sealed with the workspace key before they reach the database;
nothing here puts a credential in a message or a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from keel.data import secrets as sealing

TOKEN_LIFETIME_SECONDS = 3600
TOKEN_PREFIX = "keel1"
KEY_NAMES = ("primary", "secondary")


@dataclass(frozen=True)
class Credentials:
    """An endpoint's secrets in clear: only the gateway and `get-credentials` ever hold these."""

    primary: str
    secondary: str
    token_secret: str

    def replaced(self, key_type: str) -> Credentials:
        fresh = new_key()
        if key_type == "primary":
            return Credentials(fresh, self.secondary, self.token_secret)
        return Credentials(self.primary, fresh, self.token_secret)


def new_key() -> str:
    return secrets.token_urlsafe(32)


def new_credentials() -> Credentials:
    return Credentials(new_key(), new_key(), new_key())


def seal(credentials: Credentials, root: Path) -> str:
    values = {
        "primary": credentials.primary,
        "secondary": credentials.secondary,
        "token_secret": credentials.token_secret,
    }
    return sealing.seal(values, sealing.workspace_key(root))


def unseal(stored: str, root: Path) -> Credentials:
    values = sealing.unseal(stored, sealing.workspace_key(root))
    return Credentials(values["primary"], values["secondary"], values["token_secret"])


def issue_token(endpoint: str, credentials: Credentials, *, now: float | None = None) -> tuple[str, int]:
    """A bearer token for ``endpoint`` and its expiry (seconds since the epoch)."""
    expires = int(now if now is not None else time.time()) + TOKEN_LIFETIME_SECONDS
    return f"{TOKEN_PREFIX}.{endpoint}.{expires}.{_signature(endpoint, expires, credentials)}", expires


def _signature(endpoint: str, expires: int, credentials: Credentials) -> str:
    message = f"{endpoint}.{expires}".encode()
    digest = hmac.new(credentials.token_secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Verifier:
    """Checks a presented bearer credential for one endpoint, in constant time per comparison."""

    def __init__(self, endpoint: str, auth_mode: str, credentials: Credentials) -> None:
        self.endpoint = endpoint
        self.auth_mode = auth_mode
        self._credentials = credentials
        self._keys = (credentials.primary.encode(), credentials.secondary.encode())

    def accepts(self, presented: bytes, *, now: float | None = None) -> bool:
        if self.auth_mode == "key":
            # Both comparisons always run, so timing says nothing about which key matched.
            first = hmac.compare_digest(presented, self._keys[0])
            second = hmac.compare_digest(presented, self._keys[1])
            return first or second
        return self._accepts_token(presented, time.time() if now is None else now)

    def _accepts_token(self, presented: bytes, now: float) -> bool:
        try:
            prefix, endpoint, expires_text, signature = presented.decode("ascii").rsplit(".", 3)
            expires = int(expires_text)
        except ValueError:
            return False
        if prefix != TOKEN_PREFIX or endpoint != self.endpoint or expires <= now:
            return False
        expected = _signature(endpoint, expires, self._credentials)
        return hmac.compare_digest(signature.encode(), expected.encode())


def bearer(header: bytes | None) -> bytes | None:
    """The credential in an ``Authorization: Bearer …`` header (Azure's clients send exactly that)."""
    if not header:
        return None
    scheme, _, value = header.partition(b" ")
    if scheme.lower() != b"bearer" or not value.strip():
        return None
    return value.strip()
