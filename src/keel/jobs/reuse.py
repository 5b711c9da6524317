"""Reuse keys: a step whose key matches a completed step's (with its outputs intact) is not run again.

The key is the SHA-256 of the component (command, declared inputs and outputs,
environment variables), the code snapshot digest, the environment, the literal
input values and the *content* digests of the data inputs. If any part cannot
be known (data without a digest), there is no key and so no reuse: fail closed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Mapping

from keel.jobs.graph import Value
from keel.specs.resolved import Component

_KEY_VERSION = 1  # bump when the key's recipe changes, so old keys stop matching


def environment_digest(component: Component) -> str:
    """This interpreter plus the environment as written (Keel runs everything in this one)."""
    inline = json.dumps(component.environment.inline, sort_keys=True, default=str)
    return _environment_digest(component.environment.reference, inline)


@functools.lru_cache(maxsize=256)
def _environment_digest(reference: str | None, inline: str) -> str:
    recipe = [sys.version, os.path.realpath(sys.prefix), reference, inline]
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()


def environment_label(component: Component) -> str:
    """What the job record says about where it ran."""
    written = component.environment.reference or ("inline" if component.environment.inline else None)
    here = f"Python {sys.version.split()[0]} at {sys.prefix}"
    return f"{here} (for {written})" if written else here


def cache_key(component: Component, inputs: Mapping[str, Value | None]) -> tuple[str | None, str | None]:
    """``(key, None)``, or ``(None, why there is none)``."""
    values: dict[str, object] = {}
    for name, value in sorted(inputs.items()):
        if value is None:
            values[name] = None
        elif value.is_data:
            if value.digest is None:
                return None, f"input {name!r} has no content digest ({value.uri})"
            values[name] = ["data", value.type, value.digest]
        else:
            values[name] = ["literal", value.type, value.literal]
    recipe = {"component": _component_digest(component), "values": values}
    encoded = json.dumps(recipe, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest(), None


_COMPONENT_DIGESTS: dict[int, tuple[Component, str]] = {}


def _component_digest(component: Component) -> str:
    """The part of the key a component fixes, computed once per component object."""
    remembered = _COMPONENT_DIGESTS.get(id(component))
    if remembered is not None and remembered[0] is component:
        return remembered[1]
    recipe = {
        "version": _KEY_VERSION,
        "command": component.command,
        "inputs": {k: d.model_dump(mode="json") for k, d in sorted(component.inputs.items())},
        "outputs": {k: d.model_dump(mode="json") for k, d in sorted(component.outputs.items())},
        "variables": dict(sorted(component.environment_variables.items())),
        "code": component.code_digest,
        "environment": environment_digest(component),
        "kind": component.kind,
        "task": [component.task, component.options, component.engine, component.query],
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()
    if len(_COMPONENT_DIGESTS) > 4096:
        _COMPONENT_DIGESTS.clear()
    _COMPONENT_DIGESTS[id(component)] = (component, digest)
    return digest
