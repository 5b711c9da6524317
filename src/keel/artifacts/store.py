"""Artifact storage over a local folder or any fsspec URL, with atomic writes.

Local roots use the operating system directly (a temporary file beside the target,
then one ``os.replace``), so a reader never sees half a file; object stores commit
an object only when its upload completes, which gives the same guarantee. Every
relative path goes through :func:`keel.artifacts.paths.safe_relative_path`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from keel.artifacts.paths import contain, safe_relative_path
from keel.errors import NotFound, Unavailable

_TEMP_MARK = ".keel-tmp-"


@dataclass(frozen=True)
class ArtifactEntry:
    """One file or folder directly under a listed path."""

    path: str
    is_dir: bool
    size: int | None


class ArtifactStore:
    """Files addressed by safe relative paths under one root URL."""

    def __init__(self, root_url: str) -> None:
        self.root_url = root_url.rstrip("/")
        self._local_root = _local_path(root_url)
        self._fs: Any = None
        self._fs_root = ""
        if self._local_root is None:
            import fsspec

            self._fs, self._fs_root = fsspec.core.url_to_fs(self.root_url)

    @property
    def is_local(self) -> bool:
        return self._local_root is not None

    def url_for(self, relative: str) -> str:
        """An absolute URL (``file://`` or the store's own scheme) for a relative path."""
        clean = safe_relative_path(relative, allow_empty=True)
        return f"{self.root_url}/{clean}" if clean else self.root_url

    def local_path(self, relative: str, *, allow_empty: bool = False) -> Path:
        """The checked local path for ``relative``; only for local roots."""
        if self._local_root is None:
            raise NotImplementedError("local_path is only defined for local artifact roots")
        clean = safe_relative_path(relative, allow_empty=allow_empty)
        return contain(self._local_root, clean)

    # -- writing ---------------------------------------------------------------------

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self.open_write(relative) as handle:
            handle.write(data)

    @contextlib.contextmanager
    def open_write(self, relative: str) -> Iterator[IO[bytes]]:
        """A writable file that appears under ``relative`` only if the block succeeds."""
        if self._local_root is None:
            with self._fs.open(self._remote(relative), "wb") as handle:
                yield handle
            return
        target = self.local_path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        contain(self._local_root, safe_relative_path(relative))  # re-check after mkdir
        temp = target.parent / f"{_TEMP_MARK}{uuid.uuid4().hex}"
        try:
            with open(temp, "wb") as handle:
                yield handle
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def put_file(self, source: Path, relative: str) -> None:
        """Copy one local file in, atomically."""
        if not source.is_file():
            raise NotFound(f"no file at {source}")
        with open(source, "rb") as reader, self.open_write(relative) as writer:
            shutil.copyfileobj(reader, writer, length=1024 * 1024)

    def put_folder(self, source: Path, relative: str) -> int:
        """Copy a local folder's files in, each atomically; returns how many were copied."""
        if not source.is_dir():
            raise NotFound(f"no folder at {source}")
        count = 0
        prefix = safe_relative_path(relative, allow_empty=True)
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            inner = file.relative_to(source).as_posix()
            self.put_file(file, f"{prefix}/{inner}" if prefix else inner)
            count += 1
        return count

    # -- reading ---------------------------------------------------------------------

    @contextlib.contextmanager
    def open_read(self, relative: str) -> Iterator[IO[bytes]]:
        if self._local_root is None:
            path = self._remote(relative)
            if not self._fs.isfile(path):
                raise NotFound(f"no artifact at {safe_relative_path(relative)!r}")
            with self._fs.open(path, "rb") as handle:
                yield handle
            return
        target = self.local_path(relative)
        if not target.is_file():
            raise NotFound(f"no artifact at {safe_relative_path(relative)!r}")
        with open(target, "rb") as handle:
            yield handle

    def read_bytes(self, relative: str) -> bytes:
        with self.open_read(relative) as handle:
            return handle.read()

    def is_file(self, relative: str) -> bool:
        if self._local_root is None:
            return bool(self._fs.isfile(self._remote(relative)))
        return self.local_path(relative).is_file()

    def exists(self, relative: str) -> bool:
        if self._local_root is None:
            return bool(self._fs.exists(self._remote(relative)))
        return self.local_path(relative).exists()

    def list_entries(self, relative: str = "") -> list[ArtifactEntry]:
        """Entries directly under ``relative`` (a folder), sorted by path; [] if absent."""
        clean = safe_relative_path(relative, allow_empty=True)
        if self._local_root is None:
            return self._list_remote(clean)
        folder = self.local_path(clean, allow_empty=True)
        if not folder.is_dir():
            return []
        entries = []
        for child in sorted(folder.iterdir()):
            if child.name.startswith(_TEMP_MARK):
                continue
            inner = f"{clean}/{child.name}" if clean else child.name
            is_dir = child.is_dir()
            entries.append(ArtifactEntry(inner, is_dir, None if is_dir else child.stat().st_size))
        return entries

    def _list_remote(self, clean: str) -> list[ArtifactEntry]:
        path = f"{self._fs_root}/{clean}" if clean else self._fs_root
        try:
            found = self._fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise Unavailable(f"cannot list artifacts at {self.root_url}: {exc}") from None
        entries = []
        for item in found:
            name = str(item["name"]).rstrip("/").rsplit("/", 1)[-1]
            inner = f"{clean}/{name}" if clean else name
            is_dir = item.get("type") == "directory"
            entries.append(ArtifactEntry(inner, is_dir, None if is_dir else item.get("size")))
        return sorted(entries, key=lambda entry: entry.path)

    def download(self, relative: str, destination: Path) -> Path:
        """Copy a file or a whole folder out to ``destination``; returns what was written."""
        clean = safe_relative_path(relative, allow_empty=True)
        if clean and self.is_file(clean):
            destination.parent.mkdir(parents=True, exist_ok=True)
            with self.open_read(clean) as reader, open(destination, "wb") as writer:
                shutil.copyfileobj(reader, writer, length=1024 * 1024)
            return destination
        entries = self.list_entries(clean)
        if not entries:
            raise NotFound(f"no artifact at {clean!r}")
        destination.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            name = entry.path.rsplit("/", 1)[-1]
            self.download(entry.path, destination / name)
        return destination

    def delete(self, relative: str) -> None:
        """Remove a file or a folder tree; absent paths are fine."""
        clean = safe_relative_path(relative)
        if self._local_root is None:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm(self._remote(clean), recursive=True)
            return
        target = self.local_path(clean)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def _remote(self, relative: str) -> str:
        return f"{self._fs_root}/{safe_relative_path(relative)}"


def _local_path(url: str) -> Path | None:
    """The folder a ``file://`` URL or plain path names; None for remote stores."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if os.name == "nt":  # drive letters; urllib.request (and http.client with it) only here
            from urllib.request import url2pathname

            return Path(url2pathname(parsed.path))
        return Path(unquote(parsed.path))  # what url2pathname does on POSIX
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(url)
    return None
