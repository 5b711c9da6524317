"""Workspace API tokens: ``keel token create/list/revoke``, and checking a presented token.

A token is ``keel_`` and 43 random URL-safe characters (256 bits). Only its SHA-256
is stored: a token is a long random string, not a password a person chose, so a
slow hash would add nothing. It is shown once, when created. ``last_used_at`` is
written at most once a minute per token, so checking a token costs a read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from keel.clock import now_ms
from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import api_tokens

TOKEN_PREFIX = "keel_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_LAST_USED_EVERY_MS = 60_000


@dataclass(frozen=True)
class ApiToken:
    """A token as listed: never the token itself."""

    name: str
    prefix: str
    created_by: str | None
    created_at: int
    last_used_at: int | None

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


def create_token(store: Store, name: str, *, created_by: str | None = None) -> tuple[ApiToken, str]:
    """A new token named ``name``; returns it and the token text, which is not kept."""
    if not _NAME.match(name):
        raise InvalidInput(
            f"token name {name!r} is not valid", hint="letters, digits, '_', '.', '-'; at most 100"
        )
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name, text[:12], created_by, now_ms(), None)
    try:
        with store.write() as conn:
            conn.execute(
                insert(api_tokens).values(
                    name=name,
                    token_hash=_hash(text),
                    prefix=token.prefix,
                    created_by=created_by,
                    created_at=token.created_at,
                )
            )
    except IntegrityError:
        raise Conflict(
            f"a token named {name!r} exists", hint="revoke it first, or choose another name"
        ) from None
    return token, text


def list_tokens(store: Store) -> list[ApiToken]:
    with store.read() as conn:
        rows = conn.execute(select(api_tokens).order_by(api_tokens.c.name)).all()
    return [ApiToken(r.name, r.prefix, r.created_by, r.created_at, r.last_used_at) for r in rows]


def revoke_token(store: Store, name: str) -> None:
    with store.write() as conn:
        gone = conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount
    if not gone:
        raise NotFound(f"no token named {name!r}", hint="see `keel token list`")


def has_tokens(store: Store) -> bool:
    with store.read() as conn:
        return bool(conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def check_token(store: Store, text: str) -> str | None:
    """The name of the token ``text`` is, or None; notes when it was used."""
    if not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    digest = _hash(text)
    with store.read() as conn:
        row = conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.last_used_at).where(
                api_tokens.c.token_hash == digest
            )
        ).first()
    if row is None:
        return None
    now = now_ms()
    if row.last_used_at is None or row.last_used_at < now - _LAST_USED_EVERY_MS:
        with store.write() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    return str(row.name)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
