"""Resolving Keel's ``type: approval`` pipeline step: a gate whose inputs pass through as outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel.specs.bindings import infer_decl
from keel.specs.checks import File, Where
from keel.specs.models import DATA_TYPES, ApprovalStep, InputDecl, OutputDecl
from keel.specs.resolved import ApprovalPlan, Component, Step

if TYPE_CHECKING:
    from keel.specs.resolve import Resolver


def approval_step(resolver: Resolver, job: ApprovalStep, file: File, where: Where, *, name: str) -> Step:
    """The pipeline waits at this step until it is approved; then each input is handed on as
    the output of the same name, so the steps that bind to those outputs wait for the decision."""
    inputs = {key: infer_decl(value) for key, value in job.inputs.items()}
    for key in job.outputs:
        if key not in inputs:
            known = ", ".join(inputs) or "none"
            message = f"an approval step's outputs are its inputs passed on; there is no input {key!r}"
            raise file.error((*where, "outputs", key), message, hint=f"inputs: {known}")
    component = Component(
        kind="approval",
        name=name,
        inputs=inputs,
        outputs={key: _passed_on(decl) for key, decl in inputs.items()},
        is_deterministic=False,  # a decision is made by people, every time
        source=file.source.file,
    )
    return Step(
        name=name,
        kind="approval",
        component=component,
        inputs=resolver.bind_inputs(component, job.inputs, file, where, allow_parent=True),
        outputs=resolver.bind_outputs(component, job.outputs, file, where, allow_parent=True),
        display_name=job.display_name,
        is_deterministic=False,
        approval=ApprovalPlan(
            approvers=list(dict.fromkeys(person.strip() for person in job.approvers)),
            min_approvals=job.min_approvals,
            instructions=job.instructions,
            timeout=job.timeout,
            on_timeout=job.on_timeout,
        ),
    )


def _passed_on(decl: InputDecl) -> OutputDecl:
    """An output declared like the input it passes on (bound references infer as strings,
    but the value handed on keeps the type it had upstream)."""
    if decl.type in DATA_TYPES:
        return OutputDecl(type=decl.type)
    return OutputDecl(type=decl.type, is_control=True)
