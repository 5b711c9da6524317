"""Publish a finished invocation's output: into the content store, then a data asset version.

The staging folder becomes ``cas/<digest>`` with one rename (local artifact roots)
or an upload finished by a manifest (object stores); the version registered
points there and names the job as its producer, and the job gets an output named
``score`` (as in Azure ML: the folder holding the file), so ``keel job download
NAME --output-name score`` and ``keel data download`` both find it. The assembler hashed
the output file as it wrote it: that hash is remembered for the committed path, so
registering does not read the file again.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from keel.endpoints.batch import records
from keel.endpoints.batch.engine import Summary
from keel.endpoints.batch.records import Invocation
from keel.tracking.entities import Job
from keel.workspace import Workspace

OUTPUT_NAME = "score"


def asset_name(invocation: Invocation) -> str:
    """Every invocation of an endpoint adds a version to one data asset."""
    suffix = "predictions" if invocation.settings.output_action == "append_row" else "outputs"
    return f"{invocation.endpoint}-{suffix}"


def publish(
    workspace: Workspace, job: Job, invocation: Invocation, summary: Summary, staging: Path
) -> str | None:
    """Commit and register the output; returns the version (``name:version``), or None if there is none."""
    from keel.jobs.content import DigestCache, commit, tree_digest

    if summary.output is not None:
        output = summary.output
        digest = "sha256:" + tree_digest([(output.path.name, output.sha256)])
        relative = commit(workspace.artifacts, staging, digest)
        _remember(workspace, relative, output.path.name, output.sha256)
        version = _register(workspace, job, invocation, f"{relative}/{output.path.name}", "uri_file")
    else:
        if not any(path.is_file() for path in staging.rglob("*")):
            return None  # summary_only, and the script wrote no files of its own
        digest = DigestCache(workspace.store).digest(staging)
        relative = commit(workspace.artifacts, staging, digest)
        version = _register(workspace, job, invocation, relative, "uri_folder")
    # The job's output is the folder holding the file, as in Azure ML (named-outputs/score/…).
    records.record_output(
        workspace.store, job.id, name=OUTPUT_NAME, kind="uri_folder", uri=relative, digest=digest
    )
    return version


def _remember(workspace: Workspace, relative: str, name: str, sha256: str) -> None:
    """Record the committed file's hash (per host, path, size, mtime) as DigestCache would."""
    from keel.store.schema import content_digests
    from keel.store.upsert import upsert

    if not workspace.artifacts.is_local:
        return
    path = workspace.artifacts.local_path(f"{relative}/{name}").resolve()
    stat = os.stat(path)
    row = {
        "host": socket.gethostname(),
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "digest": sha256,
    }
    with workspace.store.write() as conn:
        upsert(conn, content_digests, [row], key=["host", "path"])


def _register(workspace: Workspace, job: Job, invocation: Invocation, uri: str, kind: str) -> str:
    from keel.data.assets import Request, register
    from keel.data.datastores import WORKSPACE_DATASTORE
    from keel.data.job_data import ASSET_TAG
    from keel.data.locations import datastore_uri
    from keel.tracking.jobs import set_tags

    request = Request(
        name=asset_name(invocation),
        path=datastore_uri(WORKSPACE_DATASTORE, uri),
        type=kind,
        description=f"{OUTPUT_NAME} of batch job {job.name} ({invocation.endpoint}/{invocation.deployment})",
        job_id=job.id,
    )
    asset, _ = register(workspace, request)
    version = f"{asset.name}:{asset.version}"
    set_tags(workspace.store, job.id, {ASSET_TAG + OUTPUT_NAME: version})
    return version
