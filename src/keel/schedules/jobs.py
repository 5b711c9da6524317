"""What a fire creates: the schedule's job with the fire's ``${{trigger.*}}`` values in it.

``create_job`` is kept as a template: a job document (read from its file when the
schedule is created, with Azure's ``inputs``/``settings``/``tags``… overrides laid
over it), or a reference to a job Keel ran (``azureml:<job name>``), whose stored
spec runs again. At fire time every ``${{trigger.<name>}}`` (and Azure's
``${{creation_context.trigger_time}}``) is replaced by the fire's value — a value
that is the whole of a field keeps its type — and the result goes through the same
resolver and submit as ``keel job create``, under the job name chosen when the fire
was claimed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from keel.errors import InvalidInput, KeelError, NotFound
from keel.schedules.timing import iso
from keel.specs.bindings import data_path, literal_value
from keel.specs.resolved import Binding, DataRef, ResolvedJob
from keel.specs.source import LocatedDict, LocatedList, Source, read_yaml
from keel.store.schema import jobs as jobs_table
from keel.workspace import Workspace

TRIGGER_REFERENCE = re.compile(r"\$\{\{\s*(trigger\.[\w.\-]+|creation_context\.trigger_time)\s*\}\}")
_JOB_NAME_REFERENCE = re.compile(r"\$\{\{\s*name\s*\}\}")
_OVERRIDES = (
    "inputs",
    "outputs",
    "settings",
    "tags",
    "experiment_name",
    "display_name",
    "description",
    "compute",
)
_MERGED = ("inputs", "outputs", "settings", "tags")
# The values each trigger type sets (every fire also sets time, schedule and type).
TRIGGER_VALUES = {
    "cron": (),
    "recurrence": (),
    "tumbling_window": ("window_start", "window_end"),
    "storage_event": ("file_path", "folder_path", "file_name", "path", "event"),
    "event": ("id", "subject", "event_type", "data"),
    "job_completed": ("job_name", "job_status", "source"),
}
_SAMPLE_PATH = "azureml://datastores/workspaceblobstore/paths/sample/file.csv"


def template_of(create_job: str | dict[str, Any], base_dir: Path, source: str) -> dict[str, Any]:
    """What ``create_job`` stands for: the job document as it will be resolved at fire time
    (still carrying its lines, for errors at create time; stored as JSON)."""
    if isinstance(create_job, str):
        return _file_or_reference(create_job, base_dir, source, overrides={})
    if "job" in create_job:
        unknown = sorted(set(create_job) - {"job", "type", *_OVERRIDES})
        if unknown:
            raise InvalidInput(
                f"{source}: create_job.{unknown[0]}: unknown field",
                hint=f"next to 'job', expected {', '.join(_OVERRIDES)}",
            )
        overrides = {key: create_job[key] for key in _OVERRIDES if key in create_job}
        return _file_or_reference(str(create_job["job"]), base_dir, source, overrides=overrides)
    return {"document": create_job, "base_dir": str(base_dir), "source": source}


def _file_or_reference(
    text: str, base_dir: Path, source: str, *, overrides: dict[str, Any]
) -> dict[str, Any]:
    if text.startswith("azureml:") and not text.startswith("azureml://"):
        return {"reference": text.removeprefix("azureml:"), "overrides": overrides, "source": source}
    path = (base_dir / Path(text.removeprefix("file:")).expanduser()).resolve()
    document = read_yaml(path)
    if not isinstance(document, dict):
        raise InvalidInput(f"{path}: expected a job specification (a mapping) at the top level")
    for key, value in overrides.items():
        if key in _MERGED and isinstance(value, dict):
            document[key] = {**(document.get(key) or {}), **value}
        else:
            document[key] = value
    return {"document": document, "base_dir": str(path.parent), "source": str(path)}


# -- trigger values ----------------------------------------------------------------------


def base_values(schedule_name: str, trigger_type: str, fire_time: int) -> dict[str, Any]:
    return {"time": iso(fire_time), "schedule": schedule_name, "type": trigger_type}


def sample_values(schedule_name: str, trigger_type: str) -> dict[str, Any]:
    """Plausible values of every ``${{trigger.*}}`` a trigger type sets, for checking a template."""
    values = base_values(schedule_name, trigger_type, 946_684_800_000)
    samples: dict[str, Any] = {
        "window_start": "2000-01-01T00:00:00Z",
        "window_end": "2000-01-02T00:00:00Z",
        "file_path": _SAMPLE_PATH,
        "folder_path": _SAMPLE_PATH.rsplit("/", 1)[0],
        "file_name": "file.csv",
        "path": "sample/file.csv",
        "event": "created",
        "id": "sample",
        "subject": "sample",
        "event_type": "sample",
        "data": _AnyData(),
        "job_name": "sample_job",
        "job_status": "completed",
        "source": "sample",
    }
    values.update({key: samples[key] for key in TRIGGER_VALUES[trigger_type]})
    return values


class _AnyData(dict[str, Any]):
    """Stands for an event's payload when checking a template: every field is a string."""

    def __missing__(self, key: str) -> Any:
        return "sample"


def substitute(node: Any, values: Mapping[str, Any], *, job_name: str | None = None) -> Any:
    """``node`` with every trigger reference replaced (and ``${{name}}`` with ``job_name``)."""
    if isinstance(node, str):
        return _substitute_text(node, values, job_name)
    if isinstance(node, dict):
        copy = LocatedDict()
        copy.line = getattr(node, "line", 0)
        copy.lines = dict(getattr(node, "lines", {}))
        for key, value in node.items():
            copy[key] = substitute(value, values, job_name=job_name)
        return copy
    if isinstance(node, list):
        items = LocatedList(substitute(value, values, job_name=job_name) for value in node)
        items.line = getattr(node, "line", 0)
        items.lines = list(getattr(node, "lines", []))
        return items
    return node


def _substitute_text(text: str, values: Mapping[str, Any], job_name: str | None) -> Any:
    whole = TRIGGER_REFERENCE.fullmatch(text.strip())
    if whole is not None:
        return lookup(values, whole.group(1))
    text = TRIGGER_REFERENCE.sub(lambda match: _as_text(lookup(values, match.group(1))), text)
    if job_name is not None:
        text = _JOB_NAME_REFERENCE.sub(job_name, text)
    return text


def lookup(values: Mapping[str, Any], expression: str) -> Any:
    """The value ``trigger.a.b`` names; a clear error when the fire has none."""
    if expression == "creation_context.trigger_time":
        return values["time"]
    node: Any = values
    for part in expression.split(".")[1:]:
        if (isinstance(node, Mapping) and part in node) or isinstance(node, _AnyData):
            node = node[part]
        else:
            known = ", ".join(f"trigger.{key}" for key in values)
            raise InvalidInput(f"${{{{{expression}}}}} has no value in this fire", hint=f"it sets {known}")
    return node


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def references_in(template: dict[str, Any]) -> list[str]:
    """Every trigger expression the template uses."""
    text = json.dumps(template.get("document") or template.get("overrides") or {})
    return [match.group(1) for match in TRIGGER_REFERENCE.finditer(text.replace('\\"', '"'))]


def check_references(template: dict[str, Any], trigger_type: str, source: str) -> None:
    """Refuse a ``${{trigger.x}}`` this trigger type never sets."""
    allowed = {"time", "schedule", "type", *TRIGGER_VALUES[trigger_type]}
    for expression in references_in(template):
        if expression == "creation_context.trigger_time":
            continue
        first = expression.split(".")[1] if "." in expression else ""
        if first not in allowed or (first != "data" and expression.count(".") > 1):
            sets = ", ".join(f"trigger.{key}" for key in sorted(allowed))
            raise InvalidInput(
                f"{source}: create_job uses ${{{{{expression}}}}}, which a {trigger_type} "
                f"trigger does not set",
                hint=f"it sets {sets}",
            )


# -- resolving and submitting ------------------------------------------------------------


def resolve(
    workspace: Workspace, template: dict[str, Any], values: Mapping[str, Any], *, job_name: str
) -> ResolvedJob:
    """The job a fire with ``values`` creates, fully checked (nothing is written)."""
    from keel.jobs import components
    from keel.specs.resolve import Resolver

    if "reference" in template:
        return _referenced(workspace, template, values, job_name=job_name)
    document = substitute(template["document"], values, job_name=job_name)
    source = Source(template["source"], document)
    return Resolver(components.lookup(workspace)).job(document, source, Path(template["base_dir"]))


def _referenced(
    workspace: Workspace, template: dict[str, Any], values: Mapping[str, Any], *, job_name: str
) -> ResolvedJob:
    """A job Keel ran before, with the schedule's input overrides bound over its own."""
    from keel.jobs.submit import load_spec

    reference = template["reference"]
    try:
        _, spec = load_spec(workspace, reference)
    except (NotFound, InvalidInput) as exc:
        raise InvalidInput(
            f"create_job: azureml:{reference}: {exc.message}",
            hint="name a job Keel ran (see `keel job list`)",
        ) from None
    overrides = substitute(template.get("overrides") or {}, values, job_name=job_name)
    source = Source(template["source"], overrides)
    root = spec.root
    inputs = dict(root.inputs)
    for key, value in (overrides.get("inputs") or {}).items():
        decl = root.component.inputs.get(key)
        if decl is None:
            known = ", ".join(root.component.inputs) or "none"
            raise source.error(("inputs", key), f"job {reference} has no input {key!r} (inputs: {known})")
        where = ("inputs", key)
        if decl.is_literal:
            inputs[key] = Binding(kind="literal", value=literal_value(decl, value, source, where))
        else:
            path = data_path(str(value), Path(template.get("base_dir", ".")), source, where, decl.type)
            inputs[key] = Binding(kind="data", data=DataRef(type=decl.type, path=path))
    update: dict[str, Any] = {"root": root.model_copy(update={"inputs": inputs}), "name": None}
    for key in ("experiment_name", "display_name", "description"):
        if overrides.get(key) is not None:
            update[key] = str(overrides[key])
    if overrides.get("tags"):
        update["tags"] = {**spec.tags, **{k: str(v) for k, v in overrides["tags"].items()}}
    return spec.model_copy(update=update)


def check_template(
    workspace: Workspace, template: dict[str, Any], schedule_name: str, trigger_type: str
) -> None:
    """Resolve the template with sample trigger values: a broken job fails at ``create``."""
    check_references(template, trigger_type, template.get("source", "create_job"))
    resolve(workspace, template, sample_values(schedule_name, trigger_type), job_name="sample_job")


def submit_fire(
    workspace: Workspace,
    template: dict[str, Any],
    values: Mapping[str, Any],
    *,
    job_name: str,
    schedule_name: str,
    fire_key: str,
) -> None:
    """Record the fire's job, queued, under ``job_name``; repeating it after a crash is safe.

    A job already recorded with its spec is left alone. One recorded without its spec
    (the submitter died between its two writes) was never runnable: it is replaced.
    """
    from keel.jobs.submit import submit

    with workspace.store.read() as conn:
        row = conn.execute(
            select(jobs_table.c.id, jobs_table.c.spec).where(jobs_table.c.name == job_name)
        ).first()
    if row is not None and row.spec is not None:
        return
    if row is not None:
        with workspace.store.write() as conn:
            conn.execute(delete(jobs_table).where(jobs_table.c.id == row.id, jobs_table.c.spec.is_(None)))
    spec = resolve(workspace, template, values, job_name=job_name)
    tags = {**spec.tags, "keel.schedule": schedule_name, "keel.fire": fire_key[:200]}
    spec = spec.model_copy(update={"tags": tags, "name": None})
    submit(workspace, spec, name=job_name, experiment_name=spec.experiment_name or schedule_name)


def describe_failure(error: Exception) -> str:
    """One line for the fire's record: a Keel error's message, or what broke."""
    if isinstance(error, KeelError):
        return str(error)
    return f"{type(error).__name__}: {error}"
