"""A copy from request to finished job: plan, persist, move, delete extras, record.

``copy`` runs a new request as a new job; ``resume`` runs what a stopped job has
not done; a ``data_transfer`` step runs inside the job the runner made for it
(see :mod:`keel.data.copy.step`). All three end in :func:`run_attempt`.
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.data.copy.engine import Engine, Problems, delete_extras, failure_reason
from keel.data.copy.incremental import Window, advance
from keel.data.copy.manifests import ManifestBuilder
from keel.data.copy.options import CopyRequest, Filters
from keel.data.copy.plan import DONE, SKIPPED, Item, Selection, done_items, load_plan, save_plan, select_items
from keel.data.copy.prepare import Prepared, destination_root, extras_of, prepare, sources_again
from keel.data.copy.progress import Counters, Reporter, Silent, summary_lines
from keel.data.copy.records import (
    MANIFEST,
    SKIP_LOG,
    CopyJob,
    JobLog,
    finish_job,
    record_counters,
    reopen_job,
    start_job,
    write_artifact,
    write_lines,
)
from keel.data.copy.throttle import Throttle
from keel.data.copy.transfer import Transfer
from keel.tracking.entities import JobStatus
from keel.workspace import Workspace


@dataclass
class CopyResult:
    """How a copy ended (a dry run has no job and moved nothing)."""

    prepared: Prepared
    counters: Counters
    status: JobStatus
    job: CopyJob | None = None
    reason: str | None = None
    problems: Problems = field(default_factory=Problems)
    digest: str | None = None  # the manifest's digest: the content digest of what was copied
    asset: str | None = None  # name:version registered from the destination

    @property
    def ok(self) -> bool:
        return self.status == JobStatus.COMPLETED


def copy(
    workspace: Workspace,
    request: CopyRequest,
    *,
    reporter: Reporter | None = None,
    experiment: str | None = None,
    dry_run: bool = False,
    base: Path | None = None,
    cancel: threading.Event | None = None,
) -> CopyResult:
    """Copy ``request`` as a new job (its plan persisted first); a dry run only plans."""
    prepared = prepare(workspace, request, base=base)
    if dry_run:
        counters = _planned(prepared, prepared.items)
        return CopyResult(prepared, counters, JobStatus.COMPLETED)
    job = start_job(workspace, prepared.request, experiment=experiment)
    if prepared.window is not None:
        from keel.tracking.jobs import log_params

        log_params(workspace.store, job.id, {"copy.window": prepared.window.to_json()})
    save_plan(workspace.store, job.id, prepared.items)
    return _owned(workspace, job, prepared, prepared.items, reporter=reporter, cancel=cancel)


def resume(
    workspace: Workspace,
    name: str,
    *,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
) -> CopyResult:
    """Run again what job ``name`` did not finish: its pending, failed and skipped files."""
    job, request = reopen_job(workspace, name)
    try:
        prepared, items = _prepare_resume(workspace, job, request)
    except BaseException as exc:
        finish_job(workspace, job, JobStatus.FAILED, f"the resume could not start: {exc}")
        raise
    return _owned(workspace, job, prepared, items, reporter=reporter, cancel=cancel, adopt=True)


def _prepare_resume(workspace: Workspace, job: CopyJob, request: CopyRequest) -> tuple[Prepared, list[Item]]:
    from keel.data.locations import resolve_location
    from keel.tracking.jobs import get_job_by_id

    plan = load_plan(workspace.store, job.id)
    trees = sources_again(workspace, request)
    destination = resolve_location(workspace, request.destination)
    root, _ = destination_root(destination, trees, request.destination)
    kept = select_items(trees, Filters.of(request.options)).kept_paths
    todo = [item for item in plan if item.status != DONE]
    selection = Selection(todo, sum(len(t.entries) for t in trees), kept_paths=kept)
    window_text = get_job_by_id(workspace.store, job.id).params.get("copy.window")
    window = Window.from_json(window_text) if window_text else None
    prepared = Prepared(request, trees, root, selection, window=window)
    if request.options.sync:
        from keel.data.copy.listing import list_destination

        prepared.extras = extras_of(prepared, dict(list_destination(root)))
    return prepared, todo


def _owned(
    workspace: Workspace,
    job: CopyJob,
    prepared: Prepared,
    items: list[Item],
    *,
    reporter: Reporter | None,
    cancel: threading.Event | None,
    adopt: bool = False,
) -> CopyResult:
    """Run an attempt of a job this process owns: it beats its heart and sets its status."""
    from keel.tracking.writer import MetricWriter

    heart = MetricWriter(workspace.store)
    heart.keep_alive(job.id)
    try:
        result = run_attempt(workspace, job, prepared, items, reporter=reporter, cancel=cancel, adopt=adopt)
    except KeyboardInterrupt:
        finish_job(workspace, job, JobStatus.CANCELED, "interrupted; `keel data copy --resume` continues it")
        raise
    except BaseException as exc:
        finish_job(workspace, job, JobStatus.FAILED, f"the copy stopped: {exc}")
        raise
    finally:
        heart.let_go(job.id)
        heart.close()
    finish_job(workspace, job, result.status, result.reason)
    return result


def run_attempt(
    workspace: Workspace,
    job: CopyJob,
    prepared: Prepared,
    items: list[Item],
    *,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    adopt: bool = False,
) -> CopyResult:
    """Move ``items`` (already in the job's plan), then delete, record and register."""
    options = prepared.request.options
    log = JobLog(workspace, job)
    counters = _planned(prepared, items)
    transfer = _transfer(prepared, job, adopt=adopt)
    _log_start(log, job, prepared, counters)
    shown = reporter or Silent()
    engine = Engine(
        workspace.store,
        job.id,
        transfer,
        items,
        counters=counters,
        reporter=shown,
        log=log,
        concurrency=options.max_concurrency,
        cancel=cancel,
    )
    started = time.monotonic()
    shown.start(len(items), counters.bytes_planned)
    try:
        finished = engine.run()
    finally:
        shown.close()
        counters.seconds = time.monotonic() - started
        log.close()
    return _conclude(workspace, job, prepared, engine, finished)


def _transfer(prepared: Prepared, job: CopyJob, *, adopt: bool) -> Transfer:
    rate = prepared.request.options.rate()
    return Transfer(
        prepared.sources,
        prepared.destination,
        prepared.request.options,
        token=f"j{job.id}",
        throttle=Throttle(rate) if rate else None,
        adopt_since_ns=job.started_ms * 1_000_000 if adopt else None,
    )


def _conclude(
    workspace: Workspace, job: CopyJob, prepared: Prepared, engine: Engine, finished: bool
) -> CopyResult:
    counters, problems, options = engine.counters, engine.problems, prepared.request.options
    log = JobLog(workspace, job)
    try:
        clean = finished and counters.files_failed == 0
        if options.sync and prepared.extras:
            if clean and counters.files_skipped == 0:
                counters.files_deleted = delete_extras(prepared.destination, prepared.extras, log)
            else:
                log.write(
                    f"not deleting {len(prepared.extras)} extra files: this run did not copy everything"
                )
        digest = _write_manifest(workspace, job, prepared, engine.manifest)
        _write_skip_log(workspace, job)
        status, reason = _status(finished, clean, counters, problems)
        asset = None
        if status == JobStatus.COMPLETED and (options.asset or prepared.window is not None):
            asset = _record_version(workspace, job, prepared)
        record_counters(workspace, job, counters.as_metrics())
        for line in summary_lines(counters):
            log.write(line)
    finally:
        log.close()
    return CopyResult(prepared, counters, status, job, reason, problems, digest, asset)


def _status(
    finished: bool, clean: bool, counters: Counters, problems: Problems
) -> tuple[JobStatus, str | None]:
    if not finished:
        return JobStatus.CANCELED, "canceled; `keel data copy --resume` continues it"
    if not clean:
        return JobStatus.FAILED, failure_reason(counters, problems)
    return JobStatus.COMPLETED, None


def _planned(prepared: Prepared, items: list[Item]) -> Counters:
    return Counters(
        files_listed=prepared.selection.listed,
        files_planned=len(items),
        bytes_planned=sum(item.size for item in items),
        files_unchanged=prepared.selection.unchanged,
    )


def _log_start(log: JobLog, job: CopyJob, prepared: Prepared, counters: Counters) -> None:
    request = prepared.request
    verb = "resuming" if job.attempt else "copying"
    log.write(f"{verb} {', '.join(request.sources)} → {request.destination} (attempt {job.attempt})")
    log.write(
        f"plan: {counters.files_planned:,} files, {counters.bytes_planned:,} bytes "
        f"({counters.files_listed:,} listed, {counters.files_unchanged:,} unchanged, "
        f"{len(prepared.extras):,} to delete)"
    )


def _write_manifest(workspace: Workspace, job: CopyJob, prepared: Prepared, built: ManifestBuilder) -> str:
    """Write the job's manifest (files of earlier attempts read back from the plan); its digest."""
    if job.attempt:
        built.add_all(done_items(workspace.store, job.id))
    data, digest = built.finish(prepared.destination.uri.rstrip("/"))
    write_artifact(workspace, job, MANIFEST, data)
    return digest


def _write_skip_log(workspace: Workspace, job: CopyJob) -> None:
    from sqlalchemy import select

    from keel.store.schema import copy_items

    query = select(copy_items.c.path, copy_items.c.error).where(
        copy_items.c.job_id == job.id, copy_items.c.status == SKIPPED
    )
    with workspace.store.read() as conn:
        rows = [{"path": path, "reason": error} for path, error in conn.execute(query)]
    if rows:
        write_lines(workspace, job, SKIP_LOG, rows)


def _record_version(workspace: Workspace, job: CopyJob, prepared: Prepared) -> str | None:
    """Advance an incremental copy's watermark and register the destination as a data asset
    version (``--asset``), together; returns the version registered, as name:version.

    The watermark update takes the transaction's connection. When the assets module
    offers to run it inside the transaction that inserts the version (``within=``),
    both commit or neither does; otherwise the version is recorded first and the
    watermark after, and ``reuse_latest`` makes a rerun after a crash between the
    two find the same version instead of adding one (the files are overwritten in
    place, so none is duplicated or lost either way).
    """
    window, name = prepared.window, prepared.request.options.asset
    if name is None:
        if window is not None:
            with workspace.store.write() as conn:
                advance(conn, window)
        return None
    from keel.data import assets

    register: Any = assets.register
    request = _asset_request(assets.Request, name, job, prepared)
    if window is not None and "within" in inspect.signature(register).parameters:

        def within(conn: Any, asset: Any) -> None:
            advance(conn, window, asset_name=asset.name, asset_version=asset.version)

        found, _ = register(workspace, request, within=within)
    else:
        found, _ = register(workspace, request)
        if window is not None:
            with workspace.store.write() as conn:
                advance(conn, window, asset_name=found.name, asset_version=found.version)
    return f"{found.name}:{found.version}"


def _asset_request(make: Any, name: str, job: CopyJob, prepared: Prepared) -> Any:
    """What to register: the destination folder, or the one file a file copy made."""
    single = len(prepared.sources) == 1 and prepared.sources[0].is_file
    path = prepared.destination.uri.rstrip("/")
    if single and prepared.items:
        path = f"{path}/{prepared.items[0].path}"
    kind = "uri_file" if single else "uri_folder"
    return make(name, path, kind, job_id=job.id, reuse_latest=True)
