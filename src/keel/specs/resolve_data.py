"""Resolving the data steps: ``type: data_transfer`` (Azure's copy_data) and Keel's ``type: transform``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.specs.bindings import infer_decl
from keel.specs.checks import File, Where
from keel.specs.models import DATA_TYPES, DataTransferJob, OutputDecl, Retry, TransformJob
from keel.specs.resolved import Component, Step

if TYPE_CHECKING:
    from keel.specs.resolve import Resolver


def data_transfer_step(
    resolver: Resolver, job: DataTransferJob, file: File, where: Where, *, name: str, allow_parent: bool
) -> Step:
    """A copy: every data input is copied to the step's one output (its ``path``, or the
    content store when it has none)."""
    if job.task != "copy_data":
        raise file.error((*where, "task"), f"task {job.task!r} is not supported here; Keel runs copy_data")
    if not job.inputs:
        raise file.error(where, "a copy_data step needs at least one input to copy")
    if len(job.outputs) != 1:
        raise file.error((*where, "outputs"), "a copy_data step needs exactly one output: the destination")
    inputs = {key: infer_decl(value) for key, value in job.inputs.items()}
    for key, decl in inputs.items():
        if decl.type not in DATA_TYPES:
            raise file.error((*where, "inputs", key), "copy_data copies data: give a uri_folder or uri_file")
    outputs = {
        key: OutputDecl.model_validate(value) if isinstance(value, dict) else OutputDecl()
        for key, value in job.outputs.items()
    }
    options = job.copy_options.model_dump(mode="json") if job.copy_options else {}
    options["data_copy_mode"] = job.data_copy_mode or "merge_with_overwrite"
    component = Component(
        kind="data_transfer",
        name=name,
        inputs=inputs,
        outputs=outputs,
        task=job.task,
        options=options,
        is_deterministic=False,  # the destination can change under it; incremental copies skip work instead
        source=file.source.file,
    )
    return _step(resolver, job, component, file, where, name=name, allow_parent=allow_parent)


def transform_step(
    resolver: Resolver, job: TransformJob, file: File, where: Where, *, name: str, allow_parent: bool
) -> Step:
    """A SQL query whose tables are the step's inputs, written as Parquet to its one output."""
    if len(job.outputs) != 1:
        raise file.error((*where, "outputs"), "a transform needs exactly one output for the query's result")
    if not job.query.strip():
        raise file.error((*where, "query"), "the query is empty")
    component = Component(
        kind="transform",
        name=name,
        inputs={key: infer_decl(value) for key, value in job.inputs.items()},
        outputs={
            key: OutputDecl.model_validate(value) if isinstance(value, dict) else OutputDecl()
            for key, value in job.outputs.items()
        },
        engine=job.engine,
        query=job.query,
        is_deterministic=True if job.is_deterministic is None else job.is_deterministic,
        source=file.source.file,
    )
    return _step(resolver, job, component, file, where, name=name, allow_parent=allow_parent)


def _step(
    resolver: Resolver,
    job: DataTransferJob | TransformJob,
    component: Component,
    file: File,
    where: Where,
    *,
    name: str,
    allow_parent: bool,
) -> Step:
    return Step(
        name=name,
        kind=component.kind,
        component=component,
        inputs=resolver.bind_inputs(component, job.inputs, file, where, allow_parent=allow_parent),
        outputs=resolver.bind_outputs(component, job.outputs, file, where, allow_parent=allow_parent),
        display_name=job.display_name,
        retry=Retry(),
        compute=job.compute,
        is_deterministic=component.is_deterministic,
    )
