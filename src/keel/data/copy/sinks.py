"""Where a file is written: never visible at its final name until it is whole.

* **Local disk**: see :mod:`keel.data.copy.local` (an unnamed ``O_TMPFILE``
  linked at the final name, or a hidden temporary name renamed over it).
* **Azure Blob**: a block blob exists only once Put Blob (small files, one
  request) or Put Block List (large files, the final request) succeeds;
  uncommitted blocks are invisible and the service drops them after a week. So
  the upload goes straight to the final name. For one-request uploads the
  service computes the blob's Content-MD5 from the bytes it received and returns
  it; Keel compares it with the MD5 it computed while reading (a mismatch fails the file).
* **S3 / GCS**: PutObject and CompleteMultipartUpload (S3), and the final
  request of a resumable upload (GCS), make the object appear whole or not at
  all; straight to the final name too. An S3 single-part ETag is the MD5 of the
  content (without SSE-KMS), which Keel compares like Azure's Content-MD5.
* **Anything else fsspec opens** (SFTP, HDFS, WebDAV…): a temporary name beside
  the target, then ``fs.mv``.

A failed transfer abandons its sink: the temporary file is removed, or the
buffered upload is closed *without* committing (fsspec's ``close`` would commit
what was written so far, so the file is first marked as already flushed).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from keel.data.copy.listing import remote_entry, store_kind
from keel.data.copy.local import Folders, Mismatch, temp_path

SMALL_UPLOAD = 4 << 20
BLOCK_SIZE = 8 << 20


class ObjectSink:
    """An upload straight to the final name, on a store that commits objects whole.

    Small files are buffered and sent in one request (whose response carries the
    store's MD5); large ones stream through fsspec's block upload, committed on close.
    """

    def __init__(self, fs: Any, target: str, size: int) -> None:
        self.fs = fs
        self.target = target
        self.kind = store_kind(fs)
        self.restarted = False
        self.md5 = hashlib.md5(usedforsecurity=False) if size <= SMALL_UPLOAD else None
        self._parts: list[bytes] = []
        self._handle: Any = None if size <= SMALL_UPLOAD else fs.open(target, "wb", block_size=BLOCK_SIZE)
        self.store_hash: str | None = None  # "md5" when the store's own hash was compared

    def write(self, data: bytes | memoryview) -> None:
        if self._handle is not None:
            self._handle.write(data)
            return
        chunk = bytes(data)
        if self.md5 is not None:
            self.md5.update(chunk)
        self._parts.append(chunk)

    def commit(self, size: int, mtime_ns: int) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            handle.close()
            self._check_size(size)
            return
        data = b"".join(self._parts)
        self._parts = []
        if len(data) != size:
            raise Mismatch(f"read {len(data)} bytes, expected {size}")
        # A stream, not bytes: aiohttp warns that a large bytes body may block its event loop.
        result = self.fs.pipe_file(self.target, io.BytesIO(data))
        self._check_store_md5(result, size)

    def _check_size(self, size: int) -> None:
        self.fs.invalidate_cache(self.target)
        arrived = int(self.fs.info(self.target).get("size") or 0)
        if arrived != size:
            raise Mismatch(f"the store holds {arrived} bytes, expected {size}")

    def _check_store_md5(self, result: Any, size: int) -> None:
        """Compare the hash the store computed on arrival with the MD5 of what was read."""
        sent = self.md5.hexdigest() if self.md5 is not None else None
        returned = _returned_md5(result)
        if returned is None or sent is None:
            self._check_size(size)
            return
        if returned != sent:
            raise Mismatch(f"the store's MD5 {returned} differs from the MD5 sent {sent}")
        self.store_hash = "md5"

    def abandon(self) -> None:
        self._parts = []
        if self._handle is not None:
            handle, self._handle = self._handle, None
            abandon_upload(handle)


def _returned_md5(result: Any) -> str | None:
    """The MD5 in an upload's response: Azure's ``content_md5``, or a single-part S3 ETag."""
    if not isinstance(result, dict):
        return None
    raw = result.get("content_md5")
    if raw:
        return bytes(raw).hex()
    etag = str(result.get("ETag") or "").strip('"')
    return etag if len(etag) == 32 and "-" not in etag else None


def abandon_upload(handle: Any) -> None:
    """Close an fsspec write handle without committing what it holds."""
    try:
        handle.discard()  # s3fs aborts its multipart upload here; others do nothing
    finally:
        handle.forced = True  # fsspec's close() would otherwise flush and commit the partial file
        handle.close()


class MoveSink:
    """Other fsspec stores: write beside the target under a temporary name, then ``fs.mv``."""

    def __init__(self, fs: Any, target: str, token: str, folders: Folders) -> None:
        self.fs = fs
        self.target = target
        self.temp = temp_path(target, token)
        folders.ensure(target.rpartition("/")[0], fs)
        self.restarted = bool(fs.exists(self.temp))
        self._handle: Any = fs.open(self.temp, "wb")
        self.store_hash: str | None = None

    def write(self, data: bytes | memoryview) -> None:
        self._handle.write(data)

    def commit(self, size: int, mtime_ns: int) -> None:
        self._handle.close()
        arrived = int(remote_entry(self.temp, self.fs.info(self.temp)).size)
        if arrived != size:
            raise Mismatch(f"the store holds {arrived} bytes, expected {size}")
        self.fs.mv(self.temp, self.target)

    def abandon(self) -> None:
        try:
            abandon_upload(self._handle)
        finally:
            if self.fs.exists(self.temp):
                self.fs.rm_file(self.temp)
