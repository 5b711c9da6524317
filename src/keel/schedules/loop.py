"""The scheduler loop: ``keel scheduler`` runs it in the foreground, ``keel up`` in a thread.

Each tick claims what has become due — clock schedules whose ``next_fire_at`` has come
(read through an index, so ten thousand idle schedules cost one query), files that
appeared in watched folders and object stores, jobs whose completion another schedule
follows — then moves claimed fires along: releases waiting windows, submits jobs,
finishes what a dead scheduler left half-done, records how jobs ended, and starts
runners (at most ``runner_limit`` at once, each a detached process); every few seconds
it also settles approvals whose timeout passed. Between ticks the loop sleeps until
the next due time, or until a watched folder wakes it.

Several schedulers may run against one store: every claim is an insert under a
UNIQUE constraint and every later move a compare-and-set, so none fires twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from keel.clock import now_ms
from keel.errors import KeelError
from keel.schedules import fires, records, storage
from keel.schedules.due import fires_due
from keel.schedules.fires import NewFire
from keel.schedules.forkserver import RunnerForks
from keel.schedules.jobs import base_values
from keel.schedules.launch import default_runner_limit, launch_ready
from keel.schedules.progress import (
    ScheduleCache,
    record_endings,
    release_pending,
    submit_claimed,
    take_over_expired,
)
from keel.schedules.records import Schedule
from keel.workspace import Workspace

_log = logging.getLogger(__name__)
DUE_BATCH = 500
SUBMITS_PER_TICK = 200
SOURCES_EVERY_SECONDS = 5.0
COMPLETIONS_EVERY_SECONDS = 1.0
REAP_EVERY_SECONDS = 15.0
SETTLE_EVERY_SECONDS = 5.0
LOCAL_RESCAN_SECONDS = 60.0
# A file created with no writer seen for this long came in whole (moved or linked in).
CREATED_SETTLE_SECONDS = 0.3


@dataclass
class TickReport:
    """What one tick did (for logs, tests and benchmarks)."""

    claimed: int = 0
    submitted: int = 0
    launched: int = 0
    ended: int = 0
    seconds: float = 0.0


@dataclass
class _Watched:
    schedule: Schedule
    source: storage.Source
    next_scan: float = 0.0


@dataclass
class _FolderState:
    """Files seen being created or opened, waiting to be written whole."""

    created: dict[str, tuple[int, float]] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)


class Scheduler:
    """One scheduler: its identity (for leases), its folder watcher, and its tick."""

    def __init__(self, workspace: Workspace, *, runner_limit: int | None = None, launch: bool = True) -> None:
        self.workspace = workspace
        self.owner = f"{fires.this_process()}:{uuid.uuid4().hex[:6]}"
        self.runner_limit = runner_limit or default_runner_limit()
        self.launch = launch
        self.wake = threading.Event()
        self.watcher = storage.FolderWatcher(self.wake)
        self.forks = RunnerForks(workspace)
        self._watched: dict[int, _Watched] = {}
        self._folders = _FolderState()
        self._every: dict[str, float] = {}

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> TickReport:
        began = time.perf_counter()
        report = TickReport()
        report.claimed += self._claim_due(now_ms())
        if self._due_every("sources", SOURCES_EVERY_SECONDS):
            self._sync_sources()
        report.claimed += self._claim_files()
        if self._due_every("completions", COMPLETIONS_EVERY_SECONDS):
            report.claimed += self._claim_completions()
        cache = ScheduleCache(self.workspace)
        release_pending(self.workspace, cache, owner=self.owner)
        take_over_expired(self.workspace, owner=self.owner)
        with self.workspace.store.read() as conn:
            mine = fires.leased_to(conn, self.owner, limit=SUBMITS_PER_TICK)
        report.submitted = submit_claimed(self.workspace, mine, cache, owner=self.owner)
        report.ended = record_endings(self.workspace, cache)
        if self.launch:
            report.launched = launch_ready(self.workspace, limit=self.runner_limit, start=self.forks.start)
        if self._due_every("reap", REAP_EVERY_SECONDS):
            from keel.tracking.jobs import reap_dead_jobs

            reap_dead_jobs(
                self.workspace.store, timeout_seconds=self.workspace.config.heartbeat_timeout_seconds
            )
        if self.launch and self._due_every("settle", SETTLE_EVERY_SECONDS):
            self._settle_approvals()
        report.seconds = time.perf_counter() - began
        return report

    def _due_every(self, what: str, seconds: float) -> bool:
        now = time.monotonic()
        if now < self._every.get(what, 0.0):
            return False
        self._every[what] = now + seconds
        return True

    def _settle_approvals(self) -> None:
        """Decide approvals whose timeout passed (and resume their pipelines), so a paused
        pipeline moves on even when nobody looks; a failure here must not hold up the fires."""
        from keel.approvals import settle

        try:
            settle(self.workspace)
        except KeelError as error:
            _log.warning("cannot settle approvals: %s", error)

    def _claim_due(self, now: int) -> int:
        """Claim the fires of every clock schedule whose time has come, in one transaction."""
        with self.workspace.store.read() as conn:
            due = records.due_schedules(conn, now, limit=DUE_BATCH)
        if not due:
            return 0
        claimed = 0
        with self.workspace.store.write() as conn:
            for schedule in due:
                wanted, following = fires_due(schedule, now)
                if records.advance(conn, schedule, following):
                    claimed += len(fires.claim(conn, schedule.id, wanted, owner=self.owner))
        return claimed

    # -- storage events ------------------------------------------------------------------

    def _sync_sources(self) -> None:
        """Watch the folders (and list the stores) of enabled storage-event schedules."""
        with self.workspace.store.read() as conn:
            current = {s.id: s for s in records.enabled_of_types(conn, ("storage_event",))}
        for schedule_id in set(self._watched) - set(current):
            self.watcher.unwatch(schedule_id)
            del self._watched[schedule_id]
        for schedule in current.values():
            known = self._watched.get(schedule.id)
            if known is not None and known.schedule.updated_at == schedule.updated_at:
                continue
            try:
                source = storage.open_source(self.workspace, schedule.trigger)
            except KeelError as error:
                _log.warning("schedule %s: cannot watch its storage: %s", schedule.name, error)
                continue
            self._watched[schedule.id] = _Watched(schedule, source)  # scanned at once: catches up
            if source.local:
                self.watcher.watch(schedule.id, source.root)

    def _claim_files(self) -> int:
        written = self._drain_folder_events()
        claimed = 0
        for schedule_id, (paths, deleted) in written.items():
            watched = self._watched.get(schedule_id)
            if watched is not None:
                claimed += self._claim_local(watched, paths, deleted)
        now = time.monotonic()
        for watched in list(self._watched.values()):
            if now >= watched.next_scan:
                interval = (
                    LOCAL_RESCAN_SECONDS
                    if watched.source.local
                    else watched.schedule.trigger.get("poll_interval_seconds", 10)
                )
                watched.next_scan = now + interval
                claimed += self._claim_scan(watched)
        return claimed

    def _drain_folder_events(self) -> dict[int, tuple[set[str], set[str]]]:
        """Folder events since the last tick, as files written whole and files deleted."""
        state = self._folders
        found: dict[int, tuple[set[str], set[str]]] = {}
        while not self.watcher.events.empty():
            event = self.watcher.events.get_nowait()
            written, deleted = found.setdefault(event.schedule_id, (set(), set()))
            if event.kind == "created":
                state.created[event.path] = (event.schedule_id, event.at)
            elif event.kind == "opened":
                state.opened.add(event.path)
            elif event.kind == "written":
                state.opened.discard(event.path)
                state.created.pop(event.path, None)
                written.add(event.path)
                deleted.discard(event.path)
            elif event.kind == "deleted":
                state.created.pop(event.path, None)
                deleted.add(event.path)
                written.discard(event.path)
        settled = time.time() - CREATED_SETTLE_SECONDS
        for path, (schedule_id, at) in list(state.created.items()):
            if at <= settled and path not in state.opened:
                del state.created[path]
                found.setdefault(schedule_id, (set(), set()))[0].add(path)
        if state.created:
            self.wake.set()  # look again soon: a file came in whole or is being written
        return found

    def _claim_local(self, watched: _Watched, written: set[str], deleted: set[str]) -> int:
        root = watched.source.root
        listing: dict[str, tuple[str, int]] = {}
        gone = set()
        for path in written:
            relative = storage.relative_to(root, path)
            stamp = storage.local_stamp(path) if relative else None
            if relative and stamp and storage.matches(watched.schedule.trigger, relative):
                listing[relative] = stamp
        for path in deleted:
            relative = storage.relative_to(root, path)
            if relative:
                gone.add(relative)
        return self._claim_changes(watched, listing, gone=gone, partial=True)

    def _claim_scan(self, watched: _Watched) -> int:
        try:
            listing = storage.listing(watched.source, watched.schedule.trigger)
        except KeelError as error:
            _log.warning("schedule %s: cannot list its storage: %s", watched.schedule.name, error)
            return 0
        settled = time.time() - storage.SETTLE_SECONDS if watched.source.local else None
        return self._claim_changes(watched, listing, settled_before=settled)

    def _claim_changes(
        self,
        watched: _Watched,
        listing: dict[str, tuple[str, int]],
        *,
        gone: frozenset[str] | set[str] = frozenset(),
        partial: bool = False,
        settled_before: float | None = None,
    ) -> int:
        """Diff against the checkpoint and claim the fires, in one transaction."""
        schedule = watched.schedule
        with self.workspace.store.write() as conn:
            seen = storage.checkpoint(conn, schedule.id)
            if partial:  # only these paths were looked at: compare them alone
                seen = {path: stamp for path, stamp in seen.items() if path in listing or path in gone}
            wanted, updated, removed = storage.changes(
                schedule, watched.source, seen, listing, settled_before=settled_before
            )
            storage.save_checkpoint(conn, schedule.id, updated, removed)
            return len(fires.claim(conn, schedule.id, wanted, owner=self.owner))

    # -- job completions -----------------------------------------------------------------

    def _claim_completions(self) -> int:
        with self.workspace.store.read() as conn:
            followers = records.enabled_of_types(conn, ("job_completed",))
        claimed = 0
        for schedule in followers:
            try:
                claimed += self._claim_completions_of(schedule)
            except KeelError as error:
                _log.warning("schedule %s: %s", schedule.name, error)
        return claimed

    def _claim_completions_of(self, schedule: Schedule) -> int:
        from keel.schedules.completions import endings_since

        since = (schedule.cursor or {}).get("since", schedule.created_at)
        statuses = set(schedule.trigger["status"])
        with self.workspace.store.read() as conn:
            ended = endings_since(conn, schedule.trigger, since)
        wanted = [
            NewFire(
                f"job:{name}",
                at,
                "job",
                {
                    **base_values(schedule.name, "job_completed", at),
                    "job_name": name,
                    "job_status": status,
                    "source": source,
                },
            )
            for name, status, at, source in ended
            if "any" in statuses or status in statuses
        ]
        latest = max([at for _, _, at, _ in ended], default=since)
        with self.workspace.store.write() as conn:
            claimed = fires.claim(conn, schedule.id, wanted, owner=self.owner)
            if latest > since:
                records.move_cursor(conn, schedule, {"since": latest})
        return len(claimed)

    # -- running ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, tick_seconds: float = 1.0) -> None:
        """Tick until ``stop`` is set; a failing tick is logged and retried, never fatal."""
        backoff = tick_seconds
        try:
            while not stop.is_set():
                try:
                    self.tick()
                    backoff = tick_seconds
                except KeelError as error:
                    _log.warning("scheduler tick failed: %s (retrying in %.0f s)", error, backoff)
                    backoff = min(backoff * 2, 30.0)
                    stop.wait(backoff)
                    continue
                except Exception:  # a bug: say so with the traceback, keep the schedules going
                    _log.exception("scheduler tick failed unexpectedly (retrying in %.0f s)", backoff)
                    backoff = min(backoff * 2, 30.0)
                    stop.wait(backoff)
                    continue
                self.wake.wait(self._sleep_for(tick_seconds))
                self.wake.clear()
        finally:
            self.close()

    def close(self) -> None:
        """Stop watching folders and let the fork server go (runners it started keep running)."""
        self.watcher.stop()
        self.forks.close()

    def _sleep_for(self, tick_seconds: float) -> float:
        """Until the next clock fire, but never longer than a tick."""
        earliest = records.earliest_due(self.workspace.store)
        if earliest is None:
            return tick_seconds
        return max(0.0, min(tick_seconds, (earliest - now_ms()) / 1000))


def run_scheduler(
    workspace: Workspace, *, stop: threading.Event, tick_seconds: float = 1.0, runner_limit: int | None = None
) -> None:
    """Run the scheduler for ``workspace`` until ``stop`` is set (``keel scheduler``, ``keel up``)."""
    Scheduler(workspace, runner_limit=runner_limit).run(stop, tick_seconds=tick_seconds)


def describe(report: TickReport) -> dict[str, Any]:
    return {
        "claimed": report.claimed,
        "submitted": report.submitted,
        "launched": report.launched,
        "ended": report.ended,
        "seconds": round(report.seconds, 4),
    }
