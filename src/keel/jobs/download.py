"""``keel job download``: a job's named outputs and artifacts, copied to a local folder."""

from __future__ import annotations

import json
from pathlib import Path

from keel.errors import NotFound
from keel.jobs.records import stored_outputs
from keel.tracking.jobs import get_job
from keel.workspace import Workspace


def download_job(
    workspace: Workspace, name: str, destination: Path, *, output_name: str | None = None
) -> list[Path]:
    """Named outputs go under ``<destination>/named-outputs``, artifacts under ``<destination>/artifacts``."""
    job = get_job(workspace.store, name)
    outputs = stored_outputs(workspace.store, job.id)
    if output_name is not None and output_name not in outputs:
        known = ", ".join(outputs) or "none"
        raise NotFound(f"job {name!r} has no output {output_name!r} (outputs: {known})")
    written: list[Path] = []
    for key, output in outputs.items():
        if output_name is not None and key != output_name:
            continue
        target = destination / "named-outputs" / key
        if output.uri is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_suffix(".json").write_text(json.dumps(output.value))
            written.append(target.with_suffix(".json"))
        else:
            written.append(workspace.artifacts.download(output.uri, target))
    if output_name is None and workspace.artifacts.list_entries(job.artifact_location):
        written.append(workspace.artifacts.download(job.artifact_location, destination / "artifacts"))
    return written
