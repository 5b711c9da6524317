"""Azure ML CLI v2 YAML ⇄ typed specs, checked with file:line errors before anything runs."""

from __future__ import annotations

from keel.specs.load import apply_override, load_component, load_job, load_sent_job
from keel.specs.resolved import Binding, Component, DataRef, OutputBinding, ResolvedJob, Step
from keel.specs.source import SpecError

__all__ = [
    "Binding",
    "Component",
    "DataRef",
    "OutputBinding",
    "ResolvedJob",
    "SpecError",
    "Step",
    "apply_override",
    "load_component",
    "load_job",
    "load_sent_job",
]
