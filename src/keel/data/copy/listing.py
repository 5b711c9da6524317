"""Listing what is at a source or a destination: each file's path, size and change stamp.

A file's *stamp* is what says it changed: its modification time in nanoseconds on
a local disk; ``<mtime ns>:<etag>`` on an object store, whose etag changes with
every write (an etag never repeats, so a file that changed and changed back is
still caught). The plan stores it, and every transfer compares the file it reads
with it before and after reading.

Local folders are walked with ``os.scandir`` (a few hundred thousand entries per
second); object stores with one recursive ``find``. Keel's own partial files
(``*.keel-part``) are never listed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keel.data.copy.local import TEMP_SUFFIX
from keel.data.datastores import storage_errors
from keel.data.locations import Location
from keel.errors import NotFound

_STAMP_LENGTH = 64
# Stores where an object appears only when its upload completes (see keel.data.copy).
ATOMIC_PUT_STORES = ("azure", "s3", "gcs")


@dataclass(slots=True)  # not frozen: listings make one per file, and frozen ones cost 4x to make
class Entry:
    """One file: its path under the listed root, size, modification time and stamp."""

    path: str
    size: int
    mtime_ns: int
    stamp: str
    md5: str | None = None  # a hash the store computed itself (a blob's Content-MD5), hex

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


@dataclass(frozen=True)
class Tree:
    """What a location holds: one file (``is_file``) or the files under a folder."""

    location: Location
    is_file: bool
    entries: list[Entry]


def store_kind(fs: Any) -> str:
    """``local``, ``azure``, ``s3``, ``gcs`` or ``other``: what a filesystem promises on writes."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    kinds = {
        "file": "local",
        "local": "local",
        "abfs": "azure",
        "az": "azure",
        "abfss": "azure",
        "s3": "s3",
        "s3a": "s3",
        "gs": "gcs",
        "gcs": "gcs",
    }
    for protocol in protocols:
        if protocol in kinds:
            return kinds[protocol]
    return "other"


def label(location: Location) -> str:
    """How storage errors name a location: its datastore, else its URI."""
    return location.datastore or location.uri


def list_source(location: Location) -> Tree:
    """The file or the files under the folder at ``location``; NotFound when nothing is there."""
    with storage_errors(label(location)):
        if store_kind(location.fs) == "local":
            return _list_local_source(location)
        return _list_remote_source(location)


def list_destination(location: Location) -> dict[str, Entry]:
    """The files under the destination folder, by relative path (empty when it does not exist)."""
    with storage_errors(label(location)):
        if store_kind(location.fs) == "local":
            if not os.path.isdir(location.path):
                return {}
            return {entry.path: entry for entry in walk_local(location.path)}
        if not location.fs.isdir(location.path):
            return {}
        return {entry.path: entry for entry in _find(location)}


def _list_local_source(location: Location) -> Tree:
    path = location.path
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"no file or folder at {location.uri}") from None
    if os.path.isdir(path):
        return Tree(location, False, sorted(walk_local(path), key=_path_of))
    name = os.path.basename(path)
    return Tree(location, True, [Entry(name, stat.st_size, stat.st_mtime_ns, str(stat.st_mtime_ns))])


def walk_local(root: str) -> Iterator[Entry]:
    """Regular files under ``root`` (symlinked files followed, symlinked folders not)."""
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as found:
            for item in found:
                if item.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{item.name}/", item.path))
                elif item.name.endswith(TEMP_SUFFIX):
                    continue
                elif item.is_file():
                    stat = item.stat()
                    yield Entry(prefix + item.name, stat.st_size, stat.st_mtime_ns, str(stat.st_mtime_ns))


def _list_remote_source(location: Location) -> Tree:
    """One recursive listing decides: the path's own object (a file), or objects under it.

    No ``info`` on the path first: on a folder that is a HEAD of a blob that does not
    exist, which a token allowed to list but not to read is refused.
    """
    fs, path = location.fs, location.path.rstrip("/")
    found = fs.find(path, detail=True)
    if path in found and found[path].get("type", "file") == "file":
        return Tree(location, True, [remote_entry(path.rsplit("/", 1)[-1], found[path])])
    entries = sorted(_entries(location, found), key=_path_of)
    if not entries:
        raise NotFound(f"no file or folder at {location.uri}")
    return Tree(location, False, entries)


def _find(location: Location) -> Iterator[Entry]:
    return _entries(location, location.fs.find(location.path, detail=True))


def _entries(location: Location, found: dict[str, Any]) -> Iterator[Entry]:
    root = location.path.rstrip("/") + "/"
    for name, info in found.items():
        if info.get("type", "file") != "file" or not name.startswith(root) or name.endswith(TEMP_SUFFIX):
            continue
        yield remote_entry(name[len(root) :], info)


def remote_entry(path: str, info: dict[str, Any]) -> Entry:
    """An Entry from an fsspec ``info`` dict (adlfs, s3fs, gcsfs and others name fields differently)."""
    mtime_ns = _mtime_ns(info.get("last_modified") or info.get("LastModified") or info.get("mtime"))
    etag = str(info.get("etag") or info.get("ETag") or "").strip('"')
    return Entry(path, int(info.get("size") or 0), mtime_ns, remote_stamp(mtime_ns, etag), _md5(info))


def remote_stamp(mtime_ns: int, etag: str) -> str:
    if not etag:
        return str(mtime_ns)
    stamp = f"{mtime_ns}:{etag}"
    if len(stamp) > _STAMP_LENGTH:
        import hashlib

        stamp = f"{mtime_ns}:{hashlib.sha1(etag.encode()).hexdigest()}"
    return stamp


def stamp_mtime_ns(stamp: str) -> int:
    return int(stamp.split(":", 1)[0])


def _mtime_ns(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000) * 1000
    if isinstance(value, int | float):
        return int(value * 1e9)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
        except ValueError:
            return 0
    return 0


def _md5(info: dict[str, Any]) -> str | None:
    settings: Any = info.get("content_settings")  # adlfs: a ContentSettings, which is dict-like
    raw = settings.get("content_md5") if settings is not None and hasattr(settings, "get") else None
    if not raw:
        return None
    if isinstance(raw, str):
        raw = base64.b64decode(raw)
    return bytes(raw).hex()


def _path_of(entry: Entry) -> str:
    return entry.path
