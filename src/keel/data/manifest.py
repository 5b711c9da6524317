"""Manifests of data versions: each file with its size, stamp and content hash.

A manifest is what a data asset version *is*: the files under one root URI, each
with its size, its modification time (and etag, where the store keeps one) and a
content hash. Local files are hashed with SHA-256 (remembered per path, size and
mtime by :class:`keel.jobs.content.DigestCache`); remote files are streamed through
SHA-256 unless the store holds a trustworthy hash of its own — a blob's
``Content-MD5``, set by the service when the blob was uploaded in one piece — in
which case that is used without reading the bytes. Each entry says which it is.

The manifest's digest is SHA-256 over its sorted ``(path, hash)`` lines, the same
recipe as :func:`keel.jobs.content.tree_digest`, so a local folder registered as an
asset has the digest its content has as a job input or output.

Stored as JSON Lines: a header, then one line per file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from keel.data.locations import Location
from keel.errors import Conflict, InvalidInput, NotFound
from keel.jobs.content import MANIFEST as CAS_MARKER  # committed content's own marker, not data
from keel.jobs.content import DigestCache, tree_digest

FORMAT_VERSION = 1
CHUNK = 1024 * 1024
REMOTE_THREADS = 8
_GLOB = re.compile(r"[*?\[]")
HashFrom = Literal["content", "Content-MD5"]


@dataclass(frozen=True)
class Entry:
    """One file: where it is under the manifest's root, how big, when changed, what hash."""

    path: str
    size: int
    hash: str  # "sha256:<hex>", or "md5:<hex>" when taken from the store
    hash_from: HashFrom = "content"
    modified: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The files of one data version, relative to ``root`` (a URI)."""

    root: str
    entries: tuple[Entry, ...]

    @property
    def digest(self) -> str:
        return "sha256:" + tree_digest([(e.path, _tree_part(e.hash)) for e in self.entries])

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def file_count(self) -> int:
        return len(self.entries)

    def to_bytes(self) -> bytes:
        header = {
            "keel_manifest": FORMAT_VERSION,
            "root": self.root,
            "files": self.file_count,
            "bytes": self.size,
            "digest": self.digest,
        }
        lines = [json.dumps(header, sort_keys=True)]
        lines += [json.dumps(_entry_json(e), sort_keys=True) for e in self.entries]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        lines = data.decode().splitlines()
        header = json.loads(lines[0])
        if header.get("keel_manifest") != FORMAT_VERSION:
            raise InvalidInput("not a Keel data manifest (or a newer format than this Keel reads)")
        entries = tuple(Entry(**json.loads(line)) for line in lines[1:] if line.strip())
        return cls(header["root"], entries)


def _tree_part(hash_text: str) -> str:
    """SHA-256 entries contribute their hex, as in tree_digest; others keep their algorithm."""
    return hash_text.removeprefix("sha256:") if hash_text.startswith("sha256:") else hash_text


def _entry_json(entry: Entry) -> dict[str, Any]:
    found = {"path": entry.path, "size": entry.size, "hash": entry.hash, "hash_from": entry.hash_from}
    if entry.modified is not None:
        found["modified"] = entry.modified
    if entry.etag is not None:
        found["etag"] = entry.etag
    return found


# -- scanning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Listed:
    """A file as a listing describes it, before it is hashed."""

    full: str
    relative: str
    size: int
    modified: str | None = None
    etag: str | None = None
    md5: str | None = None


Expect = Literal["file", "folder", "any"]


def scan(location: Location, *, digests: DigestCache | None = None, expect: Expect = "any") -> Manifest:
    """The manifest of what ``location`` names: a file, a folder, or a glob pattern."""
    root_uri, listed = _list(location, expect)
    if not listed:
        raise NotFound(f"no files at {location.uri}", hint="an empty folder or pattern cannot be registered")
    if location.is_local:
        entries = list(_hash_local(listed, digests or DigestCache(None)))
    else:
        entries = _hash_remote(location.fs, listed)
    return Manifest(root_uri, tuple(sorted(entries, key=lambda e: e.path)))


def is_pattern(path: str) -> bool:
    return _GLOB.search(path) is not None


def _list(location: Location, expect: Expect) -> tuple[str, list[_Listed]]:
    if is_pattern(location.path):
        if expect == "file":
            raise InvalidInput(f"{location.uri} is a pattern; a uri_file names one file")
        return _list_pattern(location)
    fs, path = location.fs, location.path
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise NotFound(f"nothing at {location.uri}") from None
    is_file = info.get("type") == "file"
    if expect == "file" and not is_file:
        raise InvalidInput(f"{location.uri} is a folder, but the type is uri_file")
    if expect == "folder" and is_file:
        raise InvalidInput(f"{location.uri} is a file; a uri_folder or mltable names a folder")
    if is_file:
        parent_uri, _, name = location.uri.rstrip("/").rpartition("/")
        return parent_uri, [_listed(location, path, name, info)]
    return location.uri.rstrip("/"), _list_folder(location, path)


def _list_folder(location: Location, folder: str) -> list[_Listed]:
    if location.is_local:
        return [_local_listed(full, rel) for rel, full in _local_files(Path(folder))]
    prefix = folder.rstrip("/") + "/"
    found = location.fs.find(folder, detail=True)
    return [
        _listed(location, name, name[len(prefix) :], info)
        for name, info in sorted(found.items())
        if info.get("type") == "file" and name.startswith(prefix) and name[len(prefix) :] != CAS_MARKER
    ]


def _list_pattern(location: Location) -> tuple[str, list[_Listed]]:
    """Files matching a glob, relative to the pattern's fixed leading folders."""
    parts = location.path.split("/")
    fixed = next(i for i, part in enumerate(parts) if is_pattern(part))
    base = "/".join(parts[:fixed])
    uri_parts = location.uri.split("/")
    root_uri = "/".join(uri_parts[: len(uri_parts) - (len(parts) - fixed)])
    matches = location.fs.glob(location.path, detail=True)
    listed: dict[str, _Listed] = {}
    for name, info in sorted(matches.items()):
        if info.get("type") == "file":
            listed[name] = _listed(location, name, name[len(base) + 1 :], info)
        elif info.get("type") == "directory":
            for inner in _list_folder(location, name):
                listed[inner.full] = replace(inner, relative=inner.full[len(base) + 1 :])
    return root_uri, list(listed.values())


def _local_files(folder: Path) -> Iterator[tuple[str, str]]:
    """Regular files under ``folder``, by relative POSIX path: the files DigestCache digests."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path.relative_to(folder).as_posix(), str(path)


def _local_listed(full: str, relative: str) -> _Listed:
    stat = os.stat(full)
    return _Listed(full, relative, stat.st_size, modified=_stamp_ns(stat.st_mtime_ns))


def _listed(location: Location, full: str, relative: str, info: dict[str, Any]) -> _Listed:
    if location.is_local:
        return _local_listed(full, relative)
    modified = info.get("last_modified") or info.get("LastModified") or info.get("mtime")
    etag = info.get("etag") or info.get("ETag")
    return _Listed(
        full=full,
        relative=relative,
        size=int(info.get("size") or 0),
        modified=_stamp(modified),
        etag=str(etag).strip('"') if etag else None,
        md5=_content_md5(info),
    )


def _stamp_ns(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _stamp(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    return None if value is None else str(value)


def _content_md5(info: dict[str, Any]) -> str | None:
    """A blob's Content-MD5, which the service computes for single-shot uploads."""
    settings = info.get("content_settings")  # a dict from info(), a ContentSettings from find()
    raw = (
        settings.get("content_md5") if isinstance(settings, dict) else getattr(settings, "content_md5", None)
    )
    if not raw:
        return None
    if isinstance(raw, str):
        raw = base64.b64decode(raw)
    return bytes(raw).hex()


def _hash_local(listed: Iterable[_Listed], digests: DigestCache) -> Iterator[Entry]:
    known = digests.known(os.path.commonpath([item.full for item in listed] or ["/"]))
    for item in listed:
        hexdigest = digests.file_hex(Path(item.full), known)
        yield Entry(item.relative, item.size, f"sha256:{hexdigest}", modified=item.modified)
    digests.save()


def _hash_remote(fs: Any, listed: list[_Listed]) -> list[Entry]:
    def one(item: _Listed) -> Entry:
        if item.md5 is not None:
            hash_text, source = f"md5:{item.md5}", "Content-MD5"
        else:
            hash_text, source = f"sha256:{stream_hash(fs, item.full, 'sha256')}", "content"
        return Entry(item.relative, item.size, hash_text, source, item.modified, item.etag)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=min(REMOTE_THREADS, len(listed))) as pool:
        return list(pool.map(one, listed))


def stream_hash(fs: Any, path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- copying out, checked ----------------------------------------------------------------------


def copy_checked(manifest: Manifest, source: Location, target: Path) -> None:
    """Copy every file the manifest lists from ``source`` (its root) into ``target``, checking
    each file's size and hash as it streams; each file appears only once it is complete."""
    target.mkdir(parents=True, exist_ok=True)
    entries = list(manifest.entries)
    if not entries:
        return
    with ThreadPoolExecutor(max_workers=1 if source.is_local else min(REMOTE_THREADS, len(entries))) as pool:
        list(pool.map(lambda entry: _copy_one(source, entry, target), entries))


def _copy_one(source: Location, entry: Entry, target: Path) -> None:
    origin = source.child(entry.path)
    destination = target / entry.path
    destination.parent.mkdir(parents=True, exist_ok=True)
    algorithm, _, expected = entry.hash.partition(":")
    digest = hashlib.new(algorithm)
    size = 0
    temp = destination.parent / f".keel-part-{os.getpid()}-{destination.name}"
    try:
        with origin.fs.open(origin.path, "rb") as reader, open(temp, "wb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
        if size != entry.size or digest.hexdigest() != expected:
            raise Conflict(
                f"{origin.uri} no longer matches the version's manifest "
                f"({'size' if size != entry.size else 'content hash'} differs)",
                hint="the data changed after it was registered; register a new version",
            )
        os.replace(temp, destination)
    finally:
        temp.unlink(missing_ok=True)
