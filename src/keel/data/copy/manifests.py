"""The manifest of a copy: every file the job put at its final name, stored as its artifact.

The format is :mod:`keel.data.manifest`'s (JSON Lines: a header, then path, size,
SHA-256, modification time and etag per file), so a data asset version and a copy
describe files alike; its digest follows :func:`keel.jobs.content.tree_digest`, so
a local copy's digest is the content digest a job input of that folder gets.

Lines are made as files land, by the engine's main thread while the workers copy,
so a 10,000-file manifest costs the end of the run only a sort and one write.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from keel.jobs.content import tree_digest

_LINE = b'{%s"hash":"%s","hash_from":"content","modified":"%s","path":%s,"size":%d}'


class ManifestBuilder:
    """Collects manifest lines; ``finish`` returns the whole manifest and its digest."""

    def __init__(self) -> None:
        self._lines: dict[str, tuple[bytes, str, int]] = {}  # path: (line, SHA-256 hex, size)
        self._seconds: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, path: str, size: int, stamp: str, digest: str | None) -> None:
        # One line per file, written out directly (keys in sorted order, as OPT_SORT_KEYS gives):
        # building a dict and serialising it cost three times as much on the engine's main thread.
        mtime, _, etag = stamp.partition(":")
        line = _LINE % (
            b'"etag":%s,' % orjson.dumps(etag) if etag else b"",
            (digest or "").encode(),
            self._modified(int(mtime)),
            orjson.dumps(path),
            size,
        )
        self._lines[path] = (line, (digest or "").removeprefix("sha256:"), size)

    def _modified(self, mtime_ns: int) -> bytes:
        """The modification time as ISO 8601 UTC with microseconds (seconds formatted once each)."""
        seconds, rest = divmod(mtime_ns, 1_000_000_000)
        prefix = self._seconds.get(seconds)
        if prefix is None:
            prefix = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
            self._seconds[seconds] = prefix
        return b"%s.%06d+00:00" % (prefix, rest // 1000)

    def add_all(self, rows: Iterable[tuple[str, int, str, str | None]], *, keep: bool = True) -> None:
        """Files recorded done by earlier attempts (a resume): the ones not re-added since."""
        for path, size, stamp, digest in rows:
            if not (keep and path in self._lines):
                self.add(path, size, stamp, digest)

    def finish(self, root: str) -> tuple[bytes, str]:
        """The manifest's bytes and its digest."""
        from keel.data.manifest import FORMAT_VERSION  # here: a copy needs that module for this only

        paths = sorted(self._lines)
        digest = "sha256:" + tree_digest([(path, self._lines[path][1]) for path in paths])
        header = {
            "keel_manifest": FORMAT_VERSION,
            "root": root,
            "files": len(paths),
            "bytes": sum(entry[2] for entry in self._lines.values()),
            "digest": digest,
        }
        lines = [orjson.dumps(header, option=orjson.OPT_SORT_KEYS)] + [self._lines[path][0] for path in paths]
        return b"\n".join(lines) + b"\n", digest
