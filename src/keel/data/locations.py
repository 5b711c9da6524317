"""Where data is: one resolver from what a person writes to a filesystem and a path.

    ./data/raw                                      a local file or folder
    azureml://datastores/<datastore>/paths/<path>   a path in a registered datastore
    s3://bucket/key, abfs://container/path, …       an fsspec URL (credentials from the environment)

Paths inside a datastore go through :func:`keel.artifacts.safe_relative_path`, so
``..``, absolute paths and their encodings cannot leave the datastore's root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.artifacts.paths import safe_relative_path
from keel.errors import InvalidInput

if TYPE_CHECKING:
    from keel.workspace import Workspace


class LocalFiles:
    """This machine's files: fsspec's ``LocalFileSystem`` once more than the protocol is asked.

    Local copies, listings and hashes use ``os`` calls and need only the protocol, while
    importing fsspec costs about 50 ms of every command that names a local path.
    """

    protocol = ("file", "local")

    def __getattr__(self, name: str) -> Any:
        return getattr(_fsspec_local(), name)

    def __repr__(self) -> str:
        return "LocalFiles()"


@cache
def _fsspec_local() -> Any:
    import fsspec

    return fsspec.filesystem("file")


LOCAL_FILES = LocalFiles()


_DATASTORE_URI = re.compile(r"^azureml://datastores/([^/]+)/paths/?(.*)$")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")


@dataclass(frozen=True)
class Location:
    """A file or folder: its filesystem, its path there, and how to name it to people."""

    fs: Any
    path: str
    uri: str
    datastore: str | None = None
    relative: str | None = None

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def child(self, relative: str) -> Location:
        """A path under this one (``relative`` is checked like any client path)."""
        clean = safe_relative_path(relative)
        rel = f"{self.relative}/{clean}" if self.relative else clean
        uri = f"{self.uri.rstrip('/')}/{clean}"
        return Location(self.fs, f"{self.path.rstrip('/')}/{clean}", uri, self.datastore, rel)


def datastore_uri(datastore: str, relative: str) -> str:
    return f"azureml://datastores/{datastore}/paths/{relative}"


def resolve_location(workspace: Workspace, text: str, *, base: Path | None = None) -> Location:
    """The location ``text`` names (local paths are relative to ``base``, else the current folder)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"expected a path or URI, got {text!r}")
    match = _DATASTORE_URI.match(text)
    if match is not None:
        return in_datastore(workspace, match.group(1), match.group(2))
    if names_local_path(text):
        local = local_path(text, base=base)
        return Location(LOCAL_FILES, local, local)
    url = _URL.match(text)
    if url is not None:
        return _fsspec_url(text, url.group(1).lower())
    raise InvalidInput(
        f"{text} is a data asset reference, not a location",
        hint="resolve it with keel.data.assets, or use azureml://datastores/<name>/paths/<path>",
    )


def names_local_path(text: str) -> bool:
    """Whether ``text`` is a local path (or ``file://`` URL), not a URI or an asset reference."""
    url = _URL.match(text)
    if url is not None:
        return url.group(1).lower() == "file"
    return not text.startswith("azureml:")


def local_path(text: str, *, base: Path | None = None) -> str:
    """The absolute path a local path or ``file://`` URL names (relative to ``base``, else here)."""
    raw = text[len("file://") :] if text.lower().startswith("file://") else text
    return str(((base or Path.cwd()) / Path(raw).expanduser()).resolve())


def in_datastore(workspace: Workspace, name: str, relative: str) -> Location:
    from keel.data.datastores import get_datastore, open_filesystem

    datastore = get_datastore(workspace, name)
    fs, root = open_filesystem(workspace, datastore)
    clean = safe_relative_path(relative.rstrip("/"), allow_empty=True)
    path = f"{root.rstrip('/')}/{clean}" if clean else root
    return Location(fs, path, datastore_uri(name, clean), datastore=name, relative=clean)


def _fsspec_url(text: str, scheme: str) -> Location:
    import fsspec

    if scheme in ("http", "https"):
        raise InvalidInput(f"{text}: read-only web URLs cannot be copied to or registered as folders here")
    try:
        fs, path = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:
        raise InvalidInput(f"cannot open {text}: {exc}", hint="register a datastore for it") from None
    return Location(fs, path, text)
