"""Write a resolved job back out as Azure ML CLI v2 YAML (what ``keel job export`` prints).

Each step carries its component inline (``component: {type: command, command: …,
code: …, inputs: {declarations}}``), so the file stands alone and
:func:`keel.specs.load_job` reads back the same :class:`~keel.specs.ResolvedJob`:
the same steps, components, declarations and bindings. What may differ is where it
came from (``source``, ``source_file``), the notices (recomputed on loading), and
the code snapshot digest (the folder is written, not its digest). A job without a
``name`` takes the name of the file it is loaded from, as every job file does.

The Python SDK builds its pipelines from :func:`component_document` and
:func:`literal_document` too: a Python pipeline and its export are one document.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from keel.specs.models import InputDecl, OutputDecl, Retry, Scalar
from keel.specs.resolved import Binding, Component, OutputBinding, ResolvedJob, Step

_SCHEMA = "https://azuremlschemas.azureedge.net/latest/{}.schema.json"
SCHEMAS = {
    "pipeline": _SCHEMA.format("pipelineJob"),
    "command": _SCHEMA.format("commandJob"),
    "sweep": _SCHEMA.format("sweepJob"),
}


def export_yaml(job: ResolvedJob, *, relative_to: str | os.PathLike[str] | None = None) -> str:
    """The job as a YAML job file; local paths relative to ``relative_to`` when given
    (the folder the file will be written in), absolute otherwise."""
    document = job_document(job, relative_to=relative_to)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def job_document(job: ResolvedJob, *, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The job as the mapping a YAML job file holds."""
    return _Writer(relative_to).job(job)


def component_document(component: Component) -> dict[str, Any]:
    """A component as an inline ``component:`` mapping (paths absolute)."""
    return _Writer(None).component(component)


def literal_document(kind: str, value: Scalar) -> Any:
    """A pipeline job's literal input as written: the bare value when the type YAML
    infers from it is ``kind``, else ``{type: kind, value: …}``."""
    return value if _natural_type(value) == kind else {"type": kind, "value": value}


def input_declaration(decl: InputDecl) -> dict[str, Any]:
    return {"type": decl.type, **decl.model_dump(mode="json", exclude_defaults=True)}


def output_declaration(decl: OutputDecl) -> dict[str, Any]:
    return {"type": decl.type, **decl.model_dump(mode="json", exclude_defaults=True)}


class _Writer:
    def __init__(self, relative_to: str | os.PathLike[str] | None) -> None:
        self.base = Path(relative_to).resolve() if relative_to is not None else None

    def job(self, job: ResolvedJob) -> dict[str, Any]:
        document: dict[str, Any] = {"$schema": SCHEMAS[job.kind], "type": job.kind}
        for key in ("name", "display_name", "experiment_name", "description"):
            if getattr(job, key) is not None:
                document[key] = getattr(job, key)
        if job.tags:
            document["tags"] = dict(job.tags)
        if job.kind != "pipeline":
            return {**document, **self.step(job.root)}
        root = job.root
        settings = job.settings.model_dump(mode="json", exclude_defaults=True)
        if settings:
            document["settings"] = settings
        if root.compute is not None and root.compute != job.settings.default_compute:
            document["compute"] = root.compute
        inputs = root.component.inputs
        document["inputs"] = {
            key: self.job_input(inputs[key], binding) for key, binding in root.inputs.items()
        }
        document["outputs"] = {key: output_declaration(o.decl) for key, o in root.outputs.items()}
        document["jobs"] = self.steps(root.component)
        return document

    def job_input(self, decl: InputDecl, binding: Binding) -> Any:
        """A pipeline job's input: its declaration is inferred from the value written."""
        if binding.kind == "literal" and binding.value is not None:
            return literal_document(decl.type, binding.value)
        return self.binding(decl, binding)

    def steps(self, component: Component) -> dict[str, Any]:
        return {name: self.step(step) for name, step in (component.steps or {}).items()}

    def step(self, step: Step) -> dict[str, Any]:
        component = step.component
        if step.kind == "sweep":
            document = self.sweep(step)
        elif step.kind == "approval" and step.approval is not None:
            document = {"type": "approval", **step.approval.model_dump(mode="json", exclude_defaults=True)}
        else:
            document = {"type": step.kind, "component": self.component(component)}
        if step.display_name is not None:
            document["display_name"] = step.display_name
        if step.compute is not None:
            document["compute"] = step.compute
        inputs = {
            key: self.binding(component.inputs.get(key), binding) for key, binding in step.inputs.items()
        }
        if inputs:
            document["inputs"] = inputs
        outputs = {
            key: written
            for key, binding in step.outputs.items()
            if (written := self.output(component.outputs.get(key), binding)) is not None
        }
        if outputs:
            document["outputs"] = outputs
        if step.kind == "command":
            if step.timeout is not None:
                document["limits"] = {"timeout": step.timeout}
            if step.is_deterministic != component.is_deterministic:
                document["is_deterministic"] = step.is_deterministic
        if step.kind != "pipeline" and step.retry != Retry():
            document["retry"] = step.retry.model_dump(mode="json")
        return document

    def sweep(self, step: Step) -> dict[str, Any]:
        plan = step.sweep
        if plan is None:
            raise ValueError(f"sweep step {step.name} has no sweep plan")
        sampling = plan.sampling.model_dump(mode="json", exclude_none=True)
        document: dict[str, Any] = {
            "type": "sweep",
            "sampling_algorithm": sampling["type"] if len(sampling) == 1 else sampling,
            "search_space": {
                key: param.model_dump(mode="json", exclude_none=True)
                for key, param in plan.search_space.items()
            },
            "objective": plan.objective.model_dump(mode="json"),
            "limits": plan.limits.model_dump(mode="json", exclude_none=True),
        }
        if plan.early_termination is not None:
            policy = plan.early_termination.model_dump(mode="json", exclude_none=True)
            document["early_termination"] = policy
        document["trial"] = self.component(step.component)
        return document

    def component(self, component: Component) -> dict[str, Any]:
        document: dict[str, Any] = {"type": component.kind, "name": component.name}
        for key in ("version", "display_name", "description"):
            if getattr(component, key) is not None:
                document[key] = getattr(component, key)
        if component.kind == "command":
            document["command"] = component.command
            if component.code is not None:
                document["code"] = self.path(component.code)
            environment = component.environment
            if environment.reference is not None:
                document["environment"] = environment.reference
            elif environment.inline is not None:
                document["environment"] = _plain(environment.inline)
            if component.environment_variables:
                document["environment_variables"] = dict(component.environment_variables)
        document["inputs"] = {k: input_declaration(d) for k, d in component.inputs.items()}
        document["outputs"] = {k: output_declaration(d) for k, d in component.outputs.items()}
        if component.kind == "command" and not component.is_deterministic:
            document["is_deterministic"] = False
        if component.kind == "pipeline":
            document["jobs"] = self.steps(component)
            if component.settings is not None:
                document["settings"] = component.settings.model_dump(mode="json", exclude_defaults=True)
        return document

    def binding(self, decl: InputDecl | None, binding: Binding) -> Any:
        if binding.kind == "literal":
            value = binding.value
            if decl is not None and decl.is_literal and _fits(decl.type, value):
                return value
            return {"type": _natural_type(value) or "string", "value": value}
        if binding.kind == "data" and binding.data is not None:
            data: dict[str, Any] = {"type": binding.data.type, "path": self.path(binding.data.path)}
            if binding.data.mode is not None:
                data["mode"] = binding.data.mode
            return data
        if binding.kind == "parent_input":
            return f"${{{{parent.inputs.{binding.name}}}}}"
        side = "outputs" if binding.kind == "step_output" else "inputs"
        return f"${{{{parent.jobs.{binding.step}.{side}.{binding.name}}}}}"

    def output(self, decl: OutputDecl | None, binding: OutputBinding) -> Any:
        if binding.parent_output is not None:
            return f"${{{{parent.outputs.{binding.parent_output}}}}}"
        if binding.decl == decl:
            return None  # bound as declared: nothing to write
        return output_declaration(binding.decl)

    def path(self, path: str) -> str:
        if self.base is None or not os.path.isabs(path):
            return path
        return os.path.relpath(path, self.base)


def _natural_type(value: object) -> str | None:
    """The literal type YAML (and Azure) infer for a bare value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else None


def _fits(kind: str, value: object) -> bool:
    natural = _natural_type(value)
    return natural == kind or (kind == "number" and natural == "integer")


def _plain(value: Any) -> Any:
    """Plain dicts and lists (a parsed spec's are subclasses YAML cannot write)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
