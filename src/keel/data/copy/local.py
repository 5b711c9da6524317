"""Local files: the fast path (file to file at ``cp`` speed) and the atomic local write.

Large files move with ``os.copy_file_range`` (in the kernel, no copy through
Python; ``cp`` uses the same call), falling back to ``sendfile`` and then to
read/write where a file system refuses it. When a content hash is wanted, a
second thread hashes while the kernel copies, so hashing overlaps the copy
instead of adding to it: SHA-256 (about 1.7 GiB/s per core with SHA-NI) is then
the pace, not the copy. The thread hashes the *destination* slice by slice as it
lands, through a read-only map of the unnamed file being written: no second copy
of every byte (reading the source with ``pread`` took 8% more CPU), the hash is of
the bytes that landed, and no other process can truncate an unnamed file under
the map (which would kill this one with SIGBUS). A source that changes meanwhile
is caught by its stamp, as always. Small files are read once into memory, hashed
and written.

A local destination file is written unnamed (Linux ``O_TMPFILE``) in the
target's folder, its size checked and the source's mtime set, then linked at its
final name with ``linkat``: it appears whole, at once, or not at all. Where the
target exists already (an overwrite) or there is no ``O_TMPFILE``, a hidden name
beside the target (``.<name>.<job>.keel-part``) is renamed over it with one
atomic ``os.replace``. A killed copy leaves at most such a hidden name, which
listings skip and the resume replaces.

Nothing is fsynced (per file that would cost more than the copy of a small file).
A killed process (``kill -9``) loses nothing the kernel has accepted: the page
cache outlives the process, and a file is linked at its final name only once it
is whole. Only a power cut or a kernel crash can lose recently written data, as
with ``cp``, which does not sync either; ``keel data verify`` finds what differs.

This module imports nothing heavy (no SQLAlchemy, no fsspec).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import queue
import threading
from typing import Any

from keel.data.copy.throttle import Throttle, limited

TEMP_SUFFIX = ".keel-part"
SMALL_FILE = 8 << 20
_NAME_ROOM = 200  # bytes of the target's name kept in its temporary name (names stop at 255)
# Per copy_file_range call: the hashing thread follows slice by slice. (One call for the whole
# file took 2.5 to 8 times as long into an O_TMPFILE file; 16 to 256 MiB were all as fast as cp.)
_COPY_SLICE = 16 << 20
_HASH_CHUNK = 4 << 20
_UNSUPPORTED = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)
_SOURCE_FLAGS = os.O_RDONLY | os.O_CLOEXEC


class SourceProblem(Exception):
    """The source file is missing, forbidden, or changed since the plan was made."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ShortRead(Exception):
    """The source had fewer or more bytes than planned: it changed under the copy."""


def copy_file(
    source: str,
    target: str,
    *,
    size: int,
    stamp: str,
    hashed: bool,
    token: str,
    folders: Folders,
    throttle: Throttle | None = None,
) -> tuple[str | None, bool]:
    """Copy one local file atomically, checked against its planned size and mtime stamp.

    Returns (SHA-256 hex or None, whether a partial file of an earlier attempt was
    replaced). Raises SourceProblem when the source is missing, forbidden or changed.
    """
    fd = _open_source(source)
    try:
        if size > SMALL_FILE:  # a large file changed since the plan is not worth reading
            check_stamp(source, size, stamp, os.fstat(fd), when="since it was planned")
        sink = LocalSink(target, token, folders)
        try:
            try:
                if size <= SMALL_FILE:
                    hexdigest = copy_small(fd, sink.fd, size, hashed=hashed, throttle=throttle)
                else:
                    hexdigest = copy_large(fd, sink, size, hashed=hashed, throttle=throttle)
            except ShortRead as exc:
                raise SourceProblem("changed", f"{source} changed during the copy ({exc})") from None
            # After the last byte, against the plan: any write since the listing shows here.
            # fstat, not stat: the file that was read, whatever its name points at by now.
            after = os.fstat(fd)
            if after.st_size != size or str(after.st_mtime_ns) != stamp:
                check_stamp(source, size, stamp, after, when="during the copy")
            sink.commit(size, after.st_mtime_ns)
        except BaseException:
            sink.abandon()
            raise
    finally:
        os.close(fd)
    return hexdigest, sink.restarted


def _open_source(path: str) -> int:
    try:
        return os.open(path, _SOURCE_FLAGS)
    except FileNotFoundError:
        raise SourceProblem("missing", f"{path} is gone from the source") from None
    except PermissionError:
        raise SourceProblem("forbidden", f"{path}: permission denied") from None


def check_stamp(path: str, size: int, stamp: str, stat: os.stat_result, *, when: str) -> None:
    if stat.st_size != size or str(stat.st_mtime_ns) != stamp:
        what = "size" if stat.st_size != size else "modification time"
        raise SourceProblem("changed", f"{path} changed {when} ({what} differs from the plan)")


class Mismatch(Exception):
    """What arrived at the destination is not what was sent (size or store hash)."""


def temp_path(target: str, token: str) -> str:
    folder, _, name = target.rpartition("/")
    short = name if len(name.encode()) <= _NAME_ROOM else hashlib.sha1(name.encode()).hexdigest()
    return f"{folder}/.{short}.{token}{TEMP_SUFFIX}"


class Folders:
    """Creates destination folders once each (many files share a folder)."""

    def __init__(self) -> None:
        self._made: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, folder: str, fs: Any | None = None) -> None:
        if folder in self._made:
            return
        if fs is None:
            os.makedirs(folder, exist_ok=True)
        else:
            fs.makedirs(folder, exist_ok=True)
        with self._lock:
            self._made.add(folder)


class LocalSink:
    """A file written unnamed (``O_TMPFILE``) and linked at its final name when whole.

    Where the target already exists, or the file system has no ``O_TMPFILE``, a
    hidden temporary name beside the target is used and renamed over it instead.
    Either way the final name only ever shows a complete file; a killed process
    leaves an unnamed file (freed by the kernel) or a ``*.keel-part`` name.
    """

    def __init__(self, target: str, token: str, folders: Folders) -> None:
        self.target = target
        self.token = token
        self.restarted = False
        self.store_hash: str | None = None
        folder = target.rpartition("/")[0]
        folders.ensure(folder)
        self.named = True  # False while the file has no name at all (O_TMPFILE)
        if _TMPFILE:
            try:
                # Readable too: a large file is hashed through a map of what was written.
                self.fd = os.open(folder, _TMPFILE_FLAGS, 0o666)
                self.named = False
                return
            except OSError:  # a file system without O_TMPFILE (EOPNOTSUPP, EISDIR…)
                pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        try:
            self.fd = os.open(self.temp, flags | os.O_EXCL, 0o666)
        except FileExistsError:  # left by an attempt that was killed: this file was in flight
            self.restarted = True
            self.fd = os.open(self.temp, flags | os.O_TRUNC, 0o666)

    @property
    def temp(self) -> str:
        """The hidden name beside the target (only named files and overwrites use it)."""
        return temp_path(self.target, self.token)

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def commit(self, size: int, mtime_ns: int) -> None:
        fd = self.fd
        written = os.fstat(fd).st_size
        if written != size:
            raise Mismatch(f"wrote {written} bytes, expected {size}")
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        if not self.named:
            try:
                os.link(f"/proc/self/fd/{fd}", self.target, src_dir_fd=_ROOT, follow_symlinks=True)
            except FileExistsError:  # an overwrite: name it beside the target, then rename over it
                self._link_temp()
        self.fd = -1
        os.close(fd)
        if self.named:
            os.replace(self.temp, self.target)

    def _link_temp(self) -> None:
        temp = self.temp
        try:
            os.unlink(temp)  # left by this job's attempt that was killed while overwriting
            self.restarted = True
        except FileNotFoundError:
            pass
        os.link(f"/proc/self/fd/{self.fd}", temp, src_dir_fd=_ROOT, follow_symlinks=True)
        self.named = True

    def abandon(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.named:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)


def _tmpfile_support() -> tuple[bool, int]:
    """Linux: O_TMPFILE, linked into place with linkat(AT_SYMLINK_FOLLOW) via /proc/self/fd.

    ``os.link`` uses linkat only when given a directory descriptor, hence ``_ROOT``.
    """
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return False, -1
    return True, os.open("/", os.O_RDONLY | os.O_CLOEXEC)


_TMPFILE, _ROOT = _tmpfile_support()
_TMPFILE_FLAGS = (os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC) if _TMPFILE else 0


def copy_small(src: int, dst: int, size: int, *, hashed: bool, throttle: Throttle | None) -> str | None:
    """Copy a small file through memory; returns its SHA-256 hex when ``hashed``.

    One read of the planned size: a file that shrank reads short here, one that
    grew shows in the caller's ``fstat`` after the copy.
    """
    data = os.read(src, size) if size else b""
    while len(data) < size:
        more = os.read(src, size - len(data))
        if not more:
            raise ShortRead(f"read {len(data)} bytes, planned {size}")
        data += more
    if throttle is not None:
        throttle.take(len(data))
    written = os.write(dst, data)
    if written < size:
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(dst, view) :]
    return hashlib.sha256(data).hexdigest() if hashed else None


def copy_large(
    src: int, sink: LocalSink, size: int, *, hashed: bool, throttle: Throttle | None
) -> str | None:
    """Copy in the kernel while another thread hashes; returns SHA-256 hex or None.

    The hash follows the copy slice by slice through a map of the unnamed destination;
    a named one (no ``O_TMPFILE``) could be truncated by another process under the map,
    so its source is read with ``pread`` instead.
    """
    with contextlib.suppress(OSError, AttributeError):  # as cp does: a larger read-ahead window
        os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    hasher: _Hasher | None = None
    if hashed:
        hasher = _Hasher(sink.fd, mapped=True) if not sink.named else _Hasher(src, mapped=False)
        hasher.start()
    try:
        copied = _kernel_copy(src, sink.fd, size, throttle, hasher)
    finally:
        if hasher is not None:
            hasher.finish()
    if copied != size:
        raise ShortRead(f"copied {copied} bytes, planned {size}")
    return None if hasher is None else hasher.result()


def _kernel_copy(src: int, dst: int, size: int, throttle: Throttle | None, hasher: _Hasher | None) -> int:
    chunk = limited(_COPY_SLICE, throttle)
    copied = 0
    calls = [_copy_file_range, _sendfile, _read_write]
    while True:
        if throttle is not None:
            throttle.take(chunk)
        try:
            moved = calls[0](src, dst, chunk)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED or len(calls) == 1 or copied:
                raise
            calls.pop(0)
            continue
        if moved == 0:
            return copied
        if hasher is not None:
            hasher.landed(copied, moved)
        copied += moved
        if copied > size:
            return copied  # it grew: stop, the caller reports the change


def _copy_file_range(src: int, dst: int, count: int) -> int:
    return os.copy_file_range(src, dst, count)


def _sendfile(src: int, dst: int, count: int) -> int:
    return os.sendfile(dst, src, None, count)


def _read_write(src: int, dst: int, count: int) -> int:
    data = os.read(src, min(count, _HASH_CHUNK))
    view = memoryview(data)
    while view:
        view = view[os.write(dst, view) :]
    return len(data)


class _Hasher(threading.Thread):
    """SHA-256 of the bytes that landed, slice by slice, in the order they landed.

    ``mapped``: ``fd`` is the unnamed destination, read through a read-only shared
    map (no copy). Otherwise ``fd`` is the source. Either is read with ``pread``
    (which leaves the copy's file offset alone) where a map cannot be made.
    """

    def __init__(self, fd: int, *, mapped: bool) -> None:
        super().__init__(name="keel-copy-hash", daemon=True)
        self._fd = fd
        self._mapped = mapped
        self._buffer = bytearray()
        self._slices: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._digest = hashlib.sha256()
        self._error: BaseException | None = None

    def landed(self, offset: int, count: int) -> None:
        self._slices.put((offset, count))

    def finish(self) -> None:
        self._slices.put(None)
        self.join()

    def run(self) -> None:
        try:
            while (piece := self._slices.get()) is not None:
                if self._mapped:
                    self._hash_mapped(*piece)
                else:
                    self._hash_read(*piece)
        except BaseException as exc:  # reported by result(); finish() still returns
            self._error = exc

    def _hash_mapped(self, offset: int, count: int) -> None:
        # Map offsets must be page-aligned; every slice but the last is a whole number of pages.
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        try:
            mapped = mmap.mmap(self._fd, offset + count - start, prot=mmap.PROT_READ, offset=start)
        except (OSError, ValueError):  # a file system that cannot map files
            self._mapped = False
            self._hash_read(offset, count)
            return
        with mapped, memoryview(mapped) as data:  # the view is released before the map closes
            self._digest.update(data[offset - start :])

    def _hash_read(self, offset: int, count: int) -> None:
        if not self._buffer:
            self._buffer = bytearray(_HASH_CHUNK)
        view = memoryview(self._buffer)
        end = offset + count
        while offset < end:
            read = os.preadv(self._fd, [view[: min(len(view), end - offset)]], offset)
            if read == 0:
                raise ShortRead(f"the file ended at {offset} bytes")
            self._digest.update(view[:read])
            offset += read

    def result(self) -> str:
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()
