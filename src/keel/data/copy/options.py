"""What a copy is asked to do: sources, a destination and the options, checked once.

``CopyRequest`` is what ``keel data copy``, a ``type: data_transfer`` step and
``--resume`` (which reads it back from the job's params) all run. Options follow
AzCopy and rclone where they overlap:

* ``include``/``exclude`` are globs; one without ``/`` matches a file's name, one
  with ``/`` matches its path under the source (``*`` crosses folders there).
* ``prefix`` keeps paths under the source that start with it (ADF's ``prefix``).
* ``modified_since``/``modified_until`` take ISO 8601 times (UTC unless they say).
* ``bandwidth_limit`` is bytes per second with an optional binary suffix, as in
  rclone: ``50M`` is 50 MiB/s.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import translate
from typing import Any, Literal

from keel.errors import InvalidInput

Verify = Literal["size", "hash"]
IfExists = Literal["overwrite", "fail"]
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)(?:/s)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Options:
    """How to copy; every field has the meaning of the CLI flag of the same name."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prefix: str | None = None
    modified_since: str | None = None
    modified_until: str | None = None
    max_concurrency: int | None = None
    bandwidth_limit: str | None = None
    sync: bool = False
    max_delete: int | None = None
    skip_missing: bool = False
    skip_forbidden: bool = False
    skip_changed: bool = False
    incremental: bool = False
    verify: Verify = "hash"
    if_exists: IfExists = "overwrite"
    asset: str | None = None  # register the destination as a new version of this data asset

    def check(self) -> Options:
        """The options, validated (every problem is an InvalidInput naming the option)."""
        Filters.of(self)
        self.rate()
        if self.max_concurrency is not None and not 1 <= self.max_concurrency <= 256:
            raise InvalidInput("--max-concurrency must be between 1 and 256")
        if self.max_delete is not None and self.max_delete < 0:
            raise InvalidInput("--max-delete must be 0 or more")
        if self.max_delete is not None and not self.sync:
            raise InvalidInput("--max-delete only applies with --sync")
        if self.sync and self.incremental:
            raise InvalidInput("--sync and --incremental do not combine", hint="pick one")
        if self.verify not in ("size", "hash"):
            raise InvalidInput(f"verify must be 'size' or 'hash', not {self.verify!r}")
        if self.if_exists not in ("overwrite", "fail"):
            raise InvalidInput(f"if-exists must be 'overwrite' or 'fail', not {self.if_exists!r}")
        return self

    def rate(self) -> int | None:
        return None if self.bandwidth_limit is None else parse_rate(self.bandwidth_limit)

    @property
    def mode(self) -> str:
        return "sync" if self.sync else "incremental" if self.incremental else "copy"

    @classmethod
    def from_step(cls, options: dict[str, Any]) -> Options:
        """The options of a ``data_transfer`` step (its ``copy:`` block and data_copy_mode)."""
        values = dict(options)
        mode = values.pop("data_copy_mode", "merge_with_overwrite")
        values["if_exists"] = "fail" if mode == "fail_if_conflict" else "overwrite"
        for key in ("include", "exclude"):
            values[key] = tuple(values.get(key) or ())
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known}).check()


@dataclass(frozen=True)
class CopyRequest:
    """Copy every source (a file or a folder) into one destination."""

    sources: tuple[str, ...]
    destination: str
    options: Options = field(default_factory=Options)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CopyRequest:
        raw = json.loads(text)
        options = raw.get("options", {})
        for key in ("include", "exclude"):
            options[key] = tuple(options.get(key) or ())
        return cls(tuple(raw["sources"]), raw["destination"], Options(**options))

    def with_options(self, **changes: Any) -> CopyRequest:
        return replace(self, options=replace(self.options, **changes))


@dataclass(frozen=True)
class Filters:
    """Which source files a copy keeps: globs, a path prefix and a modification window."""

    include: tuple[re.Pattern[str], ...]
    include_paths: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    exclude_paths: tuple[re.Pattern[str], ...]
    prefix: str | None
    since: float | None
    until: float | None

    @classmethod
    def of(cls, options: Options) -> Filters:
        since = parse_time(options.modified_since, "--modified-since")
        until = parse_time(options.modified_until, "--modified-until")
        if since is not None and until is not None and since >= until:
            raise InvalidInput("--modified-since must be earlier than --modified-until")
        return cls(
            include=_globs(options.include, paths=False),
            include_paths=_globs(options.include, paths=True),
            exclude=_globs(options.exclude, paths=False),
            exclude_paths=_globs(options.exclude, paths=True),
            prefix=(options.prefix or "").lstrip("/") or None,
            since=since,
            until=until,
        )

    @property
    def selects_by_name(self) -> bool:
        """True when globs or a prefix narrow the copy (an empty result is then a mistake)."""
        return bool(self.include or self.include_paths or self.exclude or self.exclude_paths or self.prefix)

    def keeps_path(self, path: str) -> bool:
        if self.prefix is not None and not path.startswith(self.prefix):
            return False
        name = path.rsplit("/", 1)[-1]
        if (self.include or self.include_paths) and not (
            any(p.match(name) for p in self.include) or any(p.match(path) for p in self.include_paths)
        ):
            return False
        return not (
            any(p.match(name) for p in self.exclude) or any(p.match(path) for p in self.exclude_paths)
        )

    def keeps_time(self, mtime: float) -> bool:
        return (self.since is None or mtime >= self.since) and (self.until is None or mtime < self.until)


def _globs(patterns: tuple[str, ...], *, paths: bool) -> tuple[re.Pattern[str], ...]:
    chosen = [p.lstrip("/") for p in patterns if ("/" in p) == paths]
    for pattern in chosen:
        if not pattern.strip():
            raise InvalidInput("an empty --include/--exclude pattern matches nothing")
    return tuple(re.compile(translate(p)) for p in chosen)


def parse_rate(text: str) -> int:
    """Bytes per second from ``50M``, ``1.5G``, ``800K``, ``50MiB/s`` or a plain number."""
    match = _RATE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidInput(
            f"--bandwidth-limit {text!r} is not a rate", hint="bytes per second, e.g. 800K, 50M or 1G"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_time(text: str | None, option: str) -> float | None:
    """Seconds since the epoch from an ISO 8601 date or time (naive means UTC)."""
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not an ISO 8601 date or time",
            hint="e.g. 2024-01-31 or 2024-01-31T12:00:00Z",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    """A UTC ISO 8601 time with microseconds (how watermarks and manifests write times)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")
