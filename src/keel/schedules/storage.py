"""Storage events: files created in (or deleted from) a folder or an object store.

The truth is a checkpoint: the files a schedule has seen, each with a stamp (size and
modification time, or the object's etag), taken when the schedule is created. A
listing compared with the checkpoint finds what was created or deleted since — after
downtime too — and each such file is claimed as a fire keyed by path and stamp, so
it fires once however many schedulers look. Object stores are listed every
``poll_interval_seconds``; local folders are watched with OS notifications
(watchdog), which fire a file when its writer closes it (or when it is moved in),
with a slow rescan behind them in case a notification is lost.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from sqlalchemy import Connection, delete, select
from watchdog.events import FileSystemEventHandler

from keel.artifacts import safe_relative_path
from keel.schedules.fires import NewFire
from keel.schedules.jobs import base_values
from keel.schedules.records import Schedule
from keel.store.schema import schedule_objects
from keel.store.upsert import upsert
from keel.workspace import Workspace

# A file still changing this recently is left for the next look (it is being written).
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Source:
    """Where a storage-event schedule looks: a filesystem and a root path in it."""

    fs: Any
    root: str
    datastore: str | None
    local: bool

    def file_path(self, relative: str) -> str:
        """What ``${{trigger.file_path}}`` says: a local path, or the datastore URI."""
        if self.local:
            return str(Path(self.root) / relative)
        from keel.data.locations import datastore_uri

        return datastore_uri(self.datastore or "", relative)


def open_source(workspace: Workspace, trigger: Mapping[str, Any]) -> Source:
    """The watched root, through Keel's one location resolver (no path escapes)."""
    from keel.data.locations import in_datastore, resolve_location

    if trigger.get("datastore"):
        location = in_datastore(workspace, str(trigger["datastore"]).removeprefix("azureml:"), "")
    else:
        location = resolve_location(workspace, str(trigger["path"]))
    local = location.is_local
    if local and not Path(location.path).is_dir():
        from keel.errors import NotFound

        raise NotFound(f"the folder to watch, {location.path}, does not exist")
    return Source(location.fs, location.path, location.datastore, local)


def matches(trigger: Mapping[str, Any], relative: str) -> bool:
    begins = str(trigger.get("path_begins_with") or "").lstrip("/")
    ends = str(trigger.get("path_ends_with") or "")
    return relative.startswith(begins) and relative.endswith(ends)


def listing(source: Source, trigger: Mapping[str, Any]) -> dict[str, tuple[str, int]]:
    """Every file under the root that the filters keep: relative path → (stamp, size)."""
    found = dict(_local_files(source.root) if source.local else _object_files(source))
    return {path: value for path, value in found.items() if matches(trigger, path)}


def _local_files(root: str) -> Iterator[tuple[str, tuple[str, int]]]:
    base = len(root.rstrip("/")) + 1
    for folder, _, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            stamp = local_stamp(full)
            if stamp is not None:
                yield full[base:], stamp


def local_stamp(path: str) -> tuple[str, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_mtime_ns}-{info.st_size}", info.st_size


def _object_files(source: Source) -> Iterator[tuple[str, tuple[str, int]]]:
    from keel.data.datastores import storage_errors

    base = len(source.root.rstrip("/")) + 1
    with storage_errors(source.datastore or source.root):
        source.fs.invalidate_cache(source.root)  # fsspec remembers listings; a poll must not
        entries = source.fs.find(source.root, detail=True)
    for name, info in entries.items():
        if info.get("type") == "directory":
            continue
        etag = info.get("etag") or info.get("ETag")
        size = int(info.get("size") or 0)
        modified = info.get("last_modified") or info.get("LastModified") or info.get("mtime") or ""
        yield name[base:], (str(etag).strip('"') if etag else f"{modified}-{size}", size)


def changes(
    schedule: Schedule,
    source: Source,
    seen: Mapping[str, str],
    now_listing: Mapping[str, tuple[str, int]],
    *,
    settled_before: float | None = None,
) -> tuple[list[NewFire], dict[str, str], list[str]]:
    """Fires for what differs between the checkpoint and a listing, and the checkpoint's
    new rows and removed paths."""
    trigger = schedule.trigger
    fired: list[NewFire] = []
    updated: dict[str, str] = {}
    for path, (stamp, size) in now_listing.items():
        if seen.get(path) == stamp:
            continue
        if settled_before is not None and _modified_after(source, path, settled_before):
            continue
        updated[path] = stamp
        if "created" in trigger["events"] and not (size == 0 and trigger.get("ignore_empty", True)):
            fired.append(file_fire(schedule, source, "created", path, stamp))
    removed = [path for path in seen if path not in now_listing]
    if "deleted" in trigger["events"]:
        fired.extend(file_fire(schedule, source, "deleted", path, seen[path]) for path in removed)
    return fired, updated, removed


def _modified_after(source: Source, relative: str, moment: float) -> bool:
    if not source.local:
        return False
    try:
        return os.stat(os.path.join(source.root, relative)).st_mtime > moment
    except OSError:
        return True


def file_fire(schedule: Schedule, source: Source, event: str, relative: str, stamp: str) -> NewFire:
    now = int(time.time() * 1000)
    file_path = source.file_path(relative)
    folder = file_path.rsplit("/", 1)[0] if "/" in file_path else file_path
    values = {
        **base_values(schedule.name, schedule.trigger_type, now),
        "file_path": file_path,
        "folder_path": folder,
        "file_name": relative.rsplit("/", 1)[-1],
        "path": relative,
        "event": event,
    }
    key = f"{event}:{relative}@{stamp}"
    if len(key) > 500:
        import hashlib

        key = f"{event}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return NewFire(key, now, "file", values)


def checkpoint(conn: Connection, schedule_id: int) -> dict[str, str]:
    query = select(schedule_objects.c.path, schedule_objects.c.stamp).where(
        schedule_objects.c.schedule_id == schedule_id
    )
    return {row.path: row.stamp for row in conn.execute(query)}


def save_checkpoint(
    conn: Connection, schedule_id: int, updated: Mapping[str, str], removed: list[str]
) -> None:
    rows = [{"schedule_id": schedule_id, "path": path, "stamp": stamp} for path, stamp in updated.items()]
    upsert(conn, schedule_objects, rows, key=["schedule_id", "path"], update=["stamp"])
    if removed:
        conn.execute(
            delete(schedule_objects).where(
                schedule_objects.c.schedule_id == schedule_id, schedule_objects.c.path.in_(removed)
            )
        )


def relative_to(root: str, path: str) -> str | None:
    """``path`` relative to the watched root, checked like any client path (None: outside)."""
    prefix = root.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    try:
        return safe_relative_path(path[len(prefix) :])
    except Exception:
        return None


# -- local folders: OS notifications -----------------------------------------------------


@dataclass(frozen=True)
class FileEvent:
    schedule_id: int
    kind: str  # written | created | moved | deleted
    path: str
    at: float


class FolderWatcher:
    """One watchdog observer for every watched local folder; events go to a queue the
    scheduler drains, and ``wake`` is set so it does so at once."""

    def __init__(self, wake: threading.Event) -> None:
        self.events: SimpleQueue[FileEvent] = SimpleQueue()
        self.wake = wake
        self._observer: Any = None
        self._watches: dict[int, tuple[str, Any]] = {}

    def watch(self, schedule_id: int, root: str) -> None:
        if self._watches.get(schedule_id, ("",))[0] == root:
            return
        self.unwatch(schedule_id)
        observer = self._started()
        handle = observer.schedule(_Handler(self, schedule_id), root, recursive=True)
        self._watches[schedule_id] = (root, handle)

    def unwatch(self, schedule_id: int) -> None:
        found = self._watches.pop(schedule_id, None)
        if found is not None and self._observer is not None:
            self._observer.unschedule(found[1])

    def watched(self) -> set[int]:
        return set(self._watches)

    def _started(self) -> Any:
        if self._observer is None:
            from watchdog.observers import Observer

            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        return self._observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._watches.clear()


class _Handler(FileSystemEventHandler):
    """Turns watchdog's events into :class:`FileEvent` (directories are ignored)."""

    def __init__(self, watcher: FolderWatcher, schedule_id: int) -> None:
        super().__init__()
        self._watcher = watcher
        self._schedule_id = schedule_id

    def on_any_event(self, event: Any) -> None:
        if event.is_directory:
            return
        kind = {
            "closed": "written",
            "created": "created",
            "moved": "moved",
            "deleted": "deleted",
            "opened": "opened",
        }.get(event.event_type)
        if kind is None:
            return
        now = time.time()
        if kind == "moved":
            self._put("deleted", os.fsdecode(event.src_path), now)
            self._put("written", os.fsdecode(event.dest_path), now)
            return
        self._put(kind, os.fsdecode(event.src_path), now)

    def _put(self, kind: str, path: str, at: float) -> None:
        self._watcher.events.put(FileEvent(self._schedule_id, kind, path, at))
        if kind in ("written", "deleted"):
            self._watcher.wake.set()
