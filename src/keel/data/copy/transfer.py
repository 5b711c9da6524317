"""Moving one planned file, checked: the source must not change, the destination must match.

Each transfer compares the source with its planned stamp (size and mtime, or
etag) after the last byte is read and before it commits: a local file through
the descriptor it was read from (a large one also when opened, so a file that
changed since the plan is not read for nothing); a remote one by asking the
store again (its etag shows any write since the listing). A file that changed is never committed: it is
skipped with ``--skip-changed``, failed otherwise. A missing or forbidden source
file is skipped with ``--skip-missing`` / ``--skip-forbidden``. Every other
problem fails the file; the copy goes on with the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keel.data.copy.listing import Entry, Tree, label, remote_entry, store_kind
from keel.data.copy.local import Folders, LocalSink, SourceProblem, copy_file
from keel.data.copy.options import Options
from keel.data.copy.plan import DONE, FAILED, SKIPPED, Item
from keel.data.copy.sinks import MoveSink, ObjectSink
from keel.data.copy.throttle import Throttle, limited
from keel.data.datastores import storage_errors
from keel.data.locations import Location
from keel.errors import KeelError, NotFound, PermissionDenied

STREAM_CHUNK = 8 << 20
# Secrets a storage library might echo in an error: SAS signatures and account keys.
_SECRETS = re.compile(r"((?:sig|AccountKey|SharedAccessSignature|x-amz-security-token)=)[^&;\s]+", re.I)


class Sink(Protocol):
    restarted: bool
    store_hash: str | None

    def write(self, data: bytes | memoryview) -> None: ...
    def commit(self, size: int, mtime_ns: int) -> None: ...
    def abandon(self) -> None: ...


@dataclass
class Outcome:
    """How one file went: ``status`` (done / skipped / failed) and what was learnt."""

    status: str
    digest: str | None = None
    error: str | None = None
    sent: int = 0
    restarted: bool = False
    adopted: bool = False
    store_hash: str | None = None


class Transfer:
    """Copies planned items from ``sources`` into ``destination`` (one instance per run)."""

    def __init__(
        self,
        sources: Sequence[Tree],
        destination: Location,
        options: Options,
        *,
        token: str,
        throttle: Throttle | None = None,
        adopt_since_ns: int | None = None,
    ) -> None:
        self.sources = sources
        self.destination = destination
        self.options = options
        self.token = token
        self.throttle = throttle
        self.adopt_since_ns = adopt_since_ns  # set on a resume: files already there may be kept
        self.hashed = options.verify == "hash"
        self.dst_kind = store_kind(destination.fs)
        self.src_kinds = [store_kind(tree.location.fs) for tree in sources]
        self.folders = Folders()
        self._src_roots = [tree.location.path.rstrip("/") for tree in sources]
        self._dst_root = destination.path.rstrip("/")

    # -- paths -----------------------------------------------------------------------------

    def source_path(self, item: Item) -> str:
        tree = self.sources[item.source]
        return tree.location.path if tree.is_file else f"{self._src_roots[item.source]}/{item.path}"

    def target_path(self, item: Item) -> str:
        return f"{self._dst_root}/{item.path}"

    # -- one file ----------------------------------------------------------------------------

    def run(self, item: Item) -> Outcome:
        """Copy one item; never raises for a file's own problem (it is in the outcome)."""
        try:
            if self.adopt_since_ns is not None:
                adopted = self.adopt(item)
                if adopted is not None:
                    return adopted
            return self._copy(item)
        except SourceProblem as problem:
            skip = {
                "missing": self.options.skip_missing,
                "forbidden": self.options.skip_forbidden,
                "changed": self.options.skip_changed,
            }[problem.kind]
            return Outcome(SKIPPED if skip else FAILED, error=f"{problem.kind}: {problem}")
        except Exception as exc:  # OSError, Mismatch, KeelError, a storage library's own: one line
            return Outcome(FAILED, error=_describe(exc))

    def _copy(self, item: Item) -> Outcome:
        src_kind = self.src_kinds[item.source]
        if src_kind == "local" and self.dst_kind == "local":
            return self._local_to_local(item)
        return self._stream(item, src_kind)

    def _local_to_local(self, item: Item) -> Outcome:
        hexdigest, restarted = copy_file(
            self.source_path(item),
            self.target_path(item),
            size=item.size,
            stamp=item.stamp,
            hashed=self.hashed,
            token=self.token,
            folders=self.folders,
            throttle=self.throttle,
        )
        return Outcome(DONE, _digest(hexdigest), sent=item.size, restarted=restarted)

    def _stream(self, item: Item, src_kind: str) -> Outcome:
        """Any other pair of stores: read in chunks, hash, write to the sink, check, commit."""
        tree = self.sources[item.source]
        fs, source = tree.location.fs, self.source_path(item)
        with _reading(tree.location):
            reader = _open_source(fs, source, src_kind)
        with reader:
            sink = self._sink(item)
            digest = hashlib.sha256() if self.hashed else None
            try:
                count = self._pump(reader, tree.location, sink, digest)
                if count != item.size:
                    raise SourceProblem(
                        "changed", f"{item.path} changed during the copy (read {count} bytes)"
                    )
                self._check_source_after(item, tree.location, source, src_kind)
                with storage_errors(label(self.destination)):
                    sink.commit(item.size, item.mtime_ns)
            except BaseException:
                sink.abandon()
                raise
        hexdigest = digest.hexdigest() if digest is not None else None
        return Outcome(
            DONE, _digest(hexdigest), sent=count, restarted=sink.restarted, store_hash=sink.store_hash
        )

    def _pump(self, reader: Any, location: Location, sink: Sink, digest: Any) -> int:
        chunk, count = limited(STREAM_CHUNK, self.throttle), 0
        while True:
            with _reading(location):
                data = reader.read(chunk)
            if not data:
                return count
            if digest is not None:
                digest.update(data)
            if self.throttle is not None:
                self.throttle.take(len(data))
            with storage_errors(label(self.destination)):
                sink.write(data)
            count += len(data)

    def _sink(self, item: Item) -> Sink:
        target = self.target_path(item)
        with storage_errors(label(self.destination)):
            if self.dst_kind == "local":
                return LocalSink(target, self.token, self.folders)
            if self.dst_kind in ("azure", "s3", "gcs"):
                return ObjectSink(self.destination.fs, target, item.size)
            return MoveSink(self.destination.fs, target, self.token, self.folders)

    def _check_source_after(self, item: Item, location: Location, path: str, kind: str) -> None:
        if kind == "local":
            after = _stat_local_source(path)
            _check_stamp(item, after.st_size, str(after.st_mtime_ns), when="during the copy")
            return
        with _reading(location):
            location.fs.invalidate_cache(path)
            entry = remote_entry(item.path, location.fs.info(path))
        _check_stamp(item, entry.size, entry.stamp, when="during the copy")

    # -- resume ----------------------------------------------------------------------------

    def adopt(self, item: Item) -> Outcome | None:
        """On a resume: the file is already at its final name, put there by the killed attempt
        (a local file carries the source's size and mtime; a blob the size, written since that
        attempt began). It is kept, hashed from the destination, not sent again."""
        target = self.target_path(item)
        with storage_errors(label(self.destination)):
            if self.dst_kind == "local":
                try:
                    stat = os.stat(target)
                except FileNotFoundError:
                    return None
                if (stat.st_size, stat.st_mtime_ns) != (item.size, item.mtime_ns):
                    return None
            else:
                there = _remote_info(self.destination.fs, target)
                if there is None or there.size != item.size or there.mtime_ns < (self.adopt_since_ns or 0):
                    return None
            hexdigest = hash_file(self.destination.fs, target, self.dst_kind) if self.hashed else None
        return Outcome(DONE, _digest(hexdigest), adopted=True)


# -- helpers ------------------------------------------------------------------------------------


def _stat_local_source(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise SourceProblem("changed", f"{path} was removed during the copy") from None


def _check_stamp(item: Item, size: int, stamp: str, *, when: str) -> None:
    if size != item.size or stamp != item.stamp:
        what = "size" if size != item.size else "modification stamp"
        raise SourceProblem("changed", f"{item.path} changed {when} ({what} differs from the plan)")


@contextlib.contextmanager
def _reading(location: Location) -> Iterator[None]:
    """Storage failures while reading the source, as the source problems they are."""
    try:
        with storage_errors(label(location)):
            yield
    except NotFound as missing:
        raise SourceProblem("missing", missing.message) from None
    except PermissionDenied as denied:
        raise SourceProblem("forbidden", denied.message) from None


def _open_source(fs: Any, path: str, kind: str) -> Any:
    if kind == "local":
        try:
            return open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise SourceProblem("missing", f"{path} is gone from the source") from None
        except PermissionError:
            raise SourceProblem("forbidden", f"{path}: permission denied") from None
    return fs.open(path, "rb", block_size=STREAM_CHUNK, cache_type="none")


def _remote_info(fs: Any, path: str) -> Entry | None:
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    return remote_entry(path, info) if info.get("type", "file") == "file" else None


def hash_file(fs: Any, path: str, kind: str) -> str:
    """SHA-256 hex of a file, read in large chunks (local files without fsspec)."""
    digest = hashlib.sha256()
    if kind == "local":
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(STREAM_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    with fs.open(path, "rb", block_size=STREAM_CHUNK, cache_type="none") as handle:
        while chunk := handle.read(STREAM_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(hexdigest: str | None) -> str | None:
    return None if hexdigest is None else f"sha256:{hexdigest}"


def _describe(exc: BaseException) -> str:
    """One line about a failure; storage errors are named by type and short text only."""
    if isinstance(exc, KeelError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = _SECRETS.sub(r"\1<hidden>", str(exc).splitlines()[0][:300] if str(exc) else "")
    return f"{type(exc).__name__}: {text}"
