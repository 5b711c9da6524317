"""Where the files of a model to register are, and which job produced them.

    ./model, model.pkl                               a local folder or file (uploaded)
    azureml://jobs/<job>/outputs/<output>            a job's output (or its logged model of that name)
    azureml://jobs/<job>/outputs/artifacts/paths/<p> files the job logged as artifacts
    runs:/<job>/<p>                                  the same, as MLflow names them
    models:/m-<id>                                   an MLflow logged model's files
    mlflow-artifacts:/<p>                            a path under the workspace's artifact root
    azureml://datastores/<ds>/paths/<p>, s3://…      a datastore path or fsspec URL

Every path inside the workspace goes through the data package's resolver (and so
through :func:`keel.artifacts.safe_relative_path`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from keel.data.datastores import WORKSPACE_DATASTORE
from keel.data.locations import Location, in_datastore, resolve_location
from keel.errors import InvalidInput, NotFound
from keel.store.schema import job_outputs, jobs, logged_models
from keel.workspace import Workspace

_JOB_OUTPUT = re.compile(r"^azureml://jobs/([^/]+)/outputs/([^/]+)/?(.*)$")
_RUNS = re.compile(r"^runs:/([^/]+)/?(.*)$")
_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]{8,64})/?$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")


@dataclass(frozen=True)
class Source:
    """Files to register: where they are, how the user named them, and the job that made them."""

    location: Location
    text: str
    job_id: int | None = None
    is_local: bool = False


def locate(workspace: Workspace, path: str, *, base: Path | None = None) -> Source:
    """The files ``path`` names; NotFound when nothing is there."""
    text = path.strip()
    if match := _JOB_OUTPUT.match(text):
        return job_output(workspace, match.group(1), match.group(2), match.group(3))
    if match := _RUNS.match(text):
        return _job_artifacts(workspace, match.group(1), match.group(2), text)
    if match := _LOGGED_MODEL.match(text):
        return _logged_model(workspace, match.group(1), text)
    if text.startswith("mlflow-artifacts:"):
        relative = re.sub(r"^mlflow-artifacts:(//[^/]*)?/*", "", text)
        return Source(in_datastore(workspace, WORKSPACE_DATASTORE, relative), text)
    if text.startswith("models:/"):
        raise InvalidInput(f"{text} names a registered model version; give the files' path instead")
    if text.startswith("azureml:") and not text.startswith("azureml://"):
        raise InvalidInput(f"{text} is a reference, not a path", hint="give the model files' path")
    local = _URI.match(text) is None or text.lower().startswith("file:")
    location = resolve_location(workspace, text, base=base)
    if local and not Path(location.path).exists():
        raise NotFound(f"no model file or folder at {location.path}")
    return Source(location, text if not local else location.path, is_local=local)


def job_output(workspace: Workspace, job_name: str, output: str, inner: str = "") -> Source:
    """A job's output: a named output, else its MLflow logged model, else a folder of its artifacts."""
    uri = f"azureml://jobs/{job_name}/outputs/{output}"
    with workspace.store.read() as conn:
        job = conn.execute(select(jobs.c.id, jobs.c.artifact_location).where(jobs.c.name == job_name)).first()
        if job is None:
            raise NotFound(f"no job named {job_name!r}", hint="see `keel job list`")
        if output == "artifacts" and inner.startswith("paths/"):
            return _job_artifacts(workspace, job_name, inner.removeprefix("paths/"), uri + "/" + inner)
        row = conn.execute(
            select(job_outputs.c.uri).where(job_outputs.c.job_id == job.id, job_outputs.c.name == output)
        ).first()
        if row is not None and row.uri is not None:
            producer = _step_that_produced(conn, job.id, row.uri)
            relative = row.uri if not inner else f"{row.uri}/{inner}"
            return Source(in_datastore(workspace, WORKSPACE_DATASTORE, relative), uri, producer)
        logged = conn.execute(
            select(logged_models.c.artifact_location)
            .where(logged_models.c.job_id == job.id, logged_models.c.name == output)
            .order_by(logged_models.c.created_at.desc())
        ).first()
        names = sorted(
            conn.execute(select(job_outputs.c.name).where(job_outputs.c.job_id == job.id)).scalars()
        )
    if logged is not None:
        return Source(_under(workspace, logged.artifact_location, inner), uri, job.id)
    artifacts = _under(workspace, job.artifact_location, output)
    if artifacts.fs.exists(artifacts.path):
        return Source(artifacts, uri, job.id)
    known = f"its outputs: {', '.join(names)}" if names else "it has no data outputs"
    raise NotFound(f"job {job_name!r} has no output, logged model or artifact folder {output!r}", hint=known)


def _job_artifacts(workspace: Workspace, job_name: str, inner: str, text: str) -> Source:
    with workspace.store.read() as conn:
        job = conn.execute(select(jobs.c.id, jobs.c.artifact_location).where(jobs.c.name == job_name)).first()
    if job is None:
        raise NotFound(f"no job named {job_name!r}", hint="see `keel job list`")
    location = _under(workspace, job.artifact_location, inner)
    if not location.fs.exists(location.path):
        raise NotFound(f"job {job_name!r} has no artifacts at {inner or '/'}")
    return Source(location, text, job.id)


def _logged_model(workspace: Workspace, model_id: str, text: str) -> Source:
    with workspace.store.read() as conn:
        row = conn.execute(
            select(logged_models.c.artifact_location, logged_models.c.job_id).where(
                logged_models.c.id == model_id
            )
        ).first()
    if row is None:
        raise NotFound(f"no logged model {model_id}")
    return Source(_under(workspace, row.artifact_location, ""), text, row.job_id)


def _under(workspace: Workspace, artifact_location: str, inner: str) -> Location:
    """A path under a job's (or logged model's) artifact location, relative or absolute."""
    if "://" in artifact_location:
        base = resolve_location(workspace, artifact_location)
        return base.child(inner) if inner else base
    relative = f"{artifact_location.rstrip('/')}/{inner}" if inner else artifact_location
    return in_datastore(workspace, WORKSPACE_DATASTORE, relative)


def _step_that_produced(conn: Connection, job_id: int, uri: str) -> int:
    """For a pipeline's output, the step job that wrote it (the one whose inputs are the lineage)."""
    frontier, found = [job_id], job_id
    for _depth in range(8):
        children = conn.execute(select(jobs.c.id).where(jobs.c.parent_id.in_(frontier))).scalars().all()
        if not children:
            break
        writer = conn.execute(
            select(job_outputs.c.job_id).where(job_outputs.c.job_id.in_(children), job_outputs.c.uri == uri)
        ).first()
        if writer is not None:
            found = int(writer.job_id)
        frontier = list(children)
    return found
