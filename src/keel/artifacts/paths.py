"""The one resolver for artifact paths that come from users and clients.

Every path a person, a script or an HTTP client hands to Keel passes through
:func:`safe_relative_path` before it touches storage, and local roots add
:func:`contain` to refuse symlinks that lead outside. Refused: empty paths,
absolute paths and drive letters, ``..`` segments, backslashes, NUL and other
control characters, and any of those hidden behind percent-encoding (once or
several times over: ``%2e%2e%2f``, ``%252e``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from keel.errors import InvalidInput

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_DECODE_ROUNDS = 4


class UnsafePath(InvalidInput):
    """Raised when a user- or client-supplied path could escape its root."""

    code = "unsafe_path"


def safe_relative_path(path: str, *, allow_empty: bool = False) -> str:
    """Return ``path`` as a clean relative POSIX path, or raise :class:`UnsafePath`.

    ``allow_empty`` admits ``""`` (and ``"."``) meaning the root itself, which
    listing operations need.
    """
    if not isinstance(path, str):
        raise UnsafePath(f"artifact path must be a string, got {type(path).__name__}")
    for form in _decoded_forms(path):
        _refuse_dangerous(form, original=path)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts and not allow_empty:
        raise UnsafePath("artifact path is empty")
    return "/".join(parts)


def _decoded_forms(path: str) -> list[str]:
    """The path and each successive percent-decoding of it, until it stops changing."""
    forms = [path]
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def _refuse_dangerous(form: str, *, original: str) -> None:
    shown = repr(original) if len(original) <= 200 else repr(original[:200] + "…")
    if _CONTROL.search(form):
        raise UnsafePath(f"artifact path {shown} contains a NUL or control character")
    if "\\" in form:
        raise UnsafePath(f"artifact path {shown} contains a backslash; use '/' between folders")
    if form.startswith(("/", "~")) or _DRIVE.match(form):
        raise UnsafePath(f"artifact path {shown} is absolute; give a path relative to the root")
    if ".." in PurePosixPath(form).parts:
        raise UnsafePath(f"artifact path {shown} climbs out of its root with '..'")


def contain(root: Path, relative: str) -> Path:
    """Join a safe relative path to a local root, refusing symlinks that lead outside it."""
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base / relative))
    if target != base and base not in target.parents:
        raise UnsafePath(f"artifact path {relative!r} resolves outside its root through a symbolic link")
    return target
