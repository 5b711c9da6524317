"""Datastore credentials at rest: encrypted with the workspace key, or read from the environment.

The workspace key is ``KEEL_SECRET_KEY`` when set (a team shares it with the
database), otherwise a file ``secret.key`` in the workspace folder, created on
first use with mode 0600. A credential value of the form ``${VAR}`` is stored as
that reference and read from the environment when the datastore is opened, so it
never touches the database at all. Nothing here ever puts a secret in a message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from keel.errors import InvalidInput, PermissionDenied

KEY_FILE = "secret.key"
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MASK = "********"


def workspace_key(root: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """The key credentials are encrypted with (created on first use)."""
    from cryptography.fernet import Fernet

    env = os.environ if environ is None else environ
    if env.get("KEEL_SECRET_KEY"):
        return env["KEEL_SECRET_KEY"].encode()
    path = root / KEY_FILE
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


def seal(credentials: Mapping[str, str], key: bytes) -> str:
    """Encrypt the literal values; ``${VAR}`` references are kept as references."""
    from cryptography.fernet import Fernet

    literal = {k: v for k, v in credentials.items() if not _REFERENCE.match(v)}
    references = {k: v for k, v in credentials.items() if _REFERENCE.match(v)}
    token = Fernet(key).encrypt(json.dumps(literal).encode()).decode() if literal else None
    return json.dumps({"sealed": token, "names": sorted(literal), "references": references})


def unseal(stored: str | None, key: bytes, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The credentials in clear, for opening a connection; never to be printed."""
    from cryptography.fernet import Fernet, InvalidToken

    if not stored:
        return {}
    env = os.environ if environ is None else environ
    document = json.loads(stored)
    found: dict[str, str] = {}
    if document.get("sealed"):
        try:
            found.update(json.loads(Fernet(key).decrypt(document["sealed"].encode())))
        except InvalidToken:
            raise PermissionDenied(
                "cannot decrypt the datastore's credentials with this workspace's key",
                hint="set KEEL_SECRET_KEY to the key they were stored with, or create the datastore again",
            ) from None
    for name, reference in document.get("references", {}).items():
        variable = _REFERENCE.match(reference)
        assert variable is not None
        if variable.group(1) not in env:
            raise InvalidInput(f"the datastore's {name} refers to ${{{variable.group(1)}}}, which is not set")
        found[name] = env[variable.group(1)]
    return found


def masked(stored: str | None) -> dict[str, str]:
    """What ``show`` may print: key names, with values masked or as their references."""
    if not stored:
        return {}
    document = json.loads(stored)
    shown = {name: MASK for name in document.get("names", [])}
    shown.update(document.get("references", {}))
    return shown
