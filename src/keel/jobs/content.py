"""Content digests of files and folders, and the content-addressed store of outputs and code.

A digest names content, not a path: ``sha256:<hex>`` of a file's bytes, or of a
folder's sorted listing of (relative path, file digest). Reuse keys are built
from digests, so renaming or touching a file changes nothing while editing one
byte changes the key. Digests of local files are remembered per (host, path,
size, mtime) so unchanged data is read once.

Committed content lives under ``<artifact root>/cas/<hex>/``: written to a staging
folder first, then moved there with one rename (local roots) or uploaded with a
manifest written last (object stores), so it is either whole or absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from keel.artifacts import ArtifactStore
from keel.errors import NotFound
from keel.store import Store
from keel.store.schema import content_digests
from keel.store.upsert import upsert

CAS_PREFIX = "cas"
MANIFEST = ".keel-manifest"
_CHUNK = 1024 * 1024


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under ``folder`` (following no symlinks out), by relative POSIX path."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path.relative_to(folder).as_posix(), path


def tree_digest(entries: list[tuple[str, str]]) -> str:
    """The digest of a folder from its (relative path, file hex digest) pairs."""
    listing = "".join(f"{rel}\0{hexdigest}\n" for rel, hexdigest in sorted(entries))
    return hashlib.sha256(listing.encode()).hexdigest()


class DigestCache:
    """Remembered digests of local files, keyed by host and path, valid while size and mtime hold."""

    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._host = socket.gethostname()
        self._fresh: list[dict[str, object]] = []

    def known(self, prefix: str) -> dict[str, tuple[int, int, str]]:
        if self._store is None:
            return {}
        query = select(
            content_digests.c.path,
            content_digests.c.size,
            content_digests.c.mtime_ns,
            content_digests.c.digest,
        ).where(
            content_digests.c.host == self._host,
            content_digests.c.path >= prefix,
            content_digests.c.path < prefix + "\uffff",
        )
        with self._store.read() as conn:
            return {path: (size, mtime, digest) for path, size, mtime, digest in conn.execute(query)}

    def file_hex(self, path: Path, known: dict[str, tuple[int, int, str]]) -> str:
        stat = path.stat()
        remembered = known.get(str(path))
        if remembered is not None and remembered[:2] == (stat.st_size, stat.st_mtime_ns):
            return remembered[2]
        hexdigest = _hash_file(path)
        self._fresh.append(
            {
                "host": self._host,
                "path": str(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "digest": hexdigest,
            }
        )
        return hexdigest

    def digest(self, path: Path) -> str:
        """``sha256:<hex>`` of a file or a folder."""
        path = path.resolve()
        if not path.exists():
            raise NotFound(f"no file or folder at {path}")
        known = self.known(str(path))
        if path.is_file():
            result = self.file_hex(path, known)
        else:
            result = tree_digest([(rel, self.file_hex(file, known)) for rel, file in _files(path)])
        self.save()
        return f"sha256:{result}"

    def save(self) -> None:
        if self._store is not None and self._fresh:
            rows, self._fresh = self._fresh, []
            with self._store.write() as conn:
                upsert(conn, content_digests, rows, key=["host", "path"])


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


def cas_path(digest: str) -> str:
    """Where content with ``digest`` lives, relative to the artifact root."""
    return f"{CAS_PREFIX}/{hex_of(digest)}"


def staging_folder(artifacts: ArtifactStore, scratch: Path) -> Path:
    """A fresh folder to write output into, on the same file system as the CAS when local."""
    base = artifacts.local_path(f"{CAS_PREFIX}/.staging", allow_empty=True) if artifacts.is_local else scratch
    folder = base / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def commit(artifacts: ArtifactStore, staged: Path, digest: str) -> str:
    """Move staged content into the CAS under its digest; returns its relative path.

    Content already there (the same digest) is kept and the staged copy dropped.
    """
    target = cas_path(digest)
    if artifacts.is_local:
        final = artifacts.local_path(target)
        if final.exists():
            shutil.rmtree(staged, ignore_errors=True)
            return target
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(staged, ignore_errors=True)  # a concurrent commit of the same content won
        return target
    if not artifacts.exists(f"{target}/{MANIFEST}"):
        count = artifacts.put_folder(staged, target)
        artifacts.write_bytes(f"{target}/{MANIFEST}", f"{digest}\n{count}\n".encode())
    shutil.rmtree(staged, ignore_errors=True)
    return target


def is_committed(artifacts: ArtifactStore, relative: str) -> bool:
    """True when committed content is still there (someone may have cleaned the store)."""
    if artifacts.is_local:
        return artifacts.local_path(relative).exists()
    return artifacts.exists(f"{relative}/{MANIFEST}")


def local_copy(artifacts: ArtifactStore, relative: str, cache: Path) -> Path:
    """A local path to committed content: in place for local roots, else downloaded once."""
    if artifacts.is_local:
        return artifacts.local_path(relative)
    target = cache / relative
    if not target.exists():
        temp = cache / f".download-{uuid.uuid4().hex}"
        artifacts.download(relative, temp)
        (temp / MANIFEST).unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)
    return target
