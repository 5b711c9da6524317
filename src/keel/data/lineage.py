"""Lineage of a data version: the job that produced it, that job's inputs, and so on back.

Every hop is a recorded row: ``data_assets.job_id`` names the producing job, and
``job_inputs`` name what each job read — another asset version
(``azureml:name:version``), another job's output (``azureml://jobs/<job>/outputs/<name>``),
or a path or URL, each with its content digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, select

from keel.data.assets import DataAsset, parse_reference
from keel.store.schema import data_assets, job_inputs, jobs
from keel.workspace import Workspace

_JOB_OUTPUT = re.compile(r"^azureml://jobs/([^/]+)/outputs/")
MAX_DEPTH = 8


@dataclass(frozen=True)
class Hop:
    """A data input of a job on the way back from a data version."""

    depth: int  # 0: an input of the job that produced the version
    job: str
    input: str
    source: str  # what the job read: an asset reference, a job output URI, a path or URL
    digest: str | None
    produced_by: str | None  # the job that produced that input, when Keel knows it


MODEL_TYPES = frozenset({"custom_model", "mlflow_model", "triton_model"})


def lineage(workspace: Workspace, asset: DataAsset, *, max_depth: int = MAX_DEPTH) -> list[Hop]:
    """The data inputs of the producing job and, depth first, of the jobs that produced them."""
    return [] if asset.job_name is None else job_lineage(workspace, asset.job_name, max_depth=max_depth)


def job_lineage(workspace: Workspace, job_name: str, *, max_depth: int = MAX_DEPTH) -> list[Hop]:
    """The data inputs of ``job_name`` and, depth first, of the jobs that produced them (what a
    data version or a model version produced by that job comes from)."""
    hops: list[Hop] = []
    seen: set[str] = set()
    with workspace.store.read() as conn:

        def walk(job: str, depth: int) -> None:
            if job in seen or depth >= max_depth:
                return
            seen.add(job)
            rows = conn.execute(
                select(job_inputs.c.name, job_inputs.c.type, job_inputs.c.uri, job_inputs.c.digest)
                .join(jobs, jobs.c.id == job_inputs.c.job_id)
                .where(jobs.c.name == job, job_inputs.c.uri.is_not(None))
                .order_by(job_inputs.c.name)
            ).all()
            for row in rows:
                # A model input names a model version, not a data asset: its history is the
                # registry's (keel model show), never a data asset that shares its name.
                producer = None if row.type in MODEL_TYPES else _producer(conn, row.uri)
                hops.append(Hop(depth, job, row.name, row.uri, row.digest, producer))
                if producer is not None:
                    walk(producer, depth + 1)

        walk(job_name, 0)
    return hops


def _producer(conn: Connection, uri: str) -> str | None:
    """The job that produced what ``uri`` names, if it is a job output or a produced asset."""
    match = _JOB_OUTPUT.match(uri)
    if match is not None:
        return match.group(1)
    if not uri.startswith("azureml:") or uri.startswith("azureml://"):
        return None
    name, version = parse_reference(uri)
    if version is None:
        return None
    query = (
        select(jobs.c.name)
        .join(data_assets, data_assets.c.job_id == jobs.c.id)
        .where(data_assets.c.name == name, data_assets.c.version == version)
    )
    found = conn.execute(query).scalar()
    return None if found is None else str(found)
