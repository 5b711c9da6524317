"""How people and clients name a model version: Azure ML's and MLflow's reference forms.

    azureml:NAME:VERSION    models:/NAME/VERSION    NAME:VERSION
    azureml:NAME@latest     models:/NAME/latest     NAME@latest     NAME (its latest version)
    azureml:NAME@ALIAS      models:/NAME@ALIAS      NAME@ALIAS

``@latest`` is the newest version that is not archived; any other label is an alias
set with ``keel model alias``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.errors import InvalidInput

LATEST = "latest"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")
_FORMS = "azureml:NAME:VERSION, azureml:NAME@ALIAS, models:/NAME/VERSION, models:/NAME@ALIAS or NAME:VERSION"


@dataclass(frozen=True)
class Reference:
    """A parsed reference: a name and either a version or a label (``latest`` or an alias)."""

    name: str
    version: str | None = None
    label: str | None = None  # None with no version: the latest version

    @property
    def alias(self) -> str | None:
        return self.label if self.label not in (None, LATEST) else None


def parse_model_reference(reference: str) -> Reference:
    """The name and version or label a reference names; InvalidInput if it is none of the forms."""
    text = reference.strip()
    if text.startswith("azureml://"):
        raise InvalidInput(f"{reference} is a location, not a model reference", hint=f"use {_FORMS}")
    if text.startswith("models:/"):
        return _mlflow_form(reference, text.removeprefix("models:/"))
    text = text.removeprefix("azureml:")
    if "@" in text:
        name, _, label = text.partition("@")
        return _checked(reference, Reference(name, label=label))
    name, _, version = text.partition(":")
    return _checked(reference, Reference(name, version=version or None))


def _mlflow_form(reference: str, rest: str) -> Reference:
    if "@" in rest:
        name, _, label = rest.partition("@")
        return _checked(reference, Reference(name, label=label))
    name, _, version = rest.partition("/")
    if version.lower() == LATEST:
        return _checked(reference, Reference(name, label=LATEST))
    if version and not version.isdigit() and version.lower() in ("production", "staging", "archived", "none"):
        raise InvalidInput(
            f"{reference}: Keel has no model stages", hint="use an alias instead: models:/NAME@ALIAS"
        )
    return _checked(reference, Reference(name, version=version or None))


def _checked(reference: str, parsed: Reference) -> Reference:
    if not _NAME.match(parsed.name):
        raise InvalidInput(f"{reference!r} is not a model reference", hint=f"use {_FORMS}")
    if parsed.version is not None and not _VERSION.match(parsed.version):
        raise InvalidInput(f"{reference!r}: {parsed.version!r} is not a version", hint=f"use {_FORMS}")
    if parsed.label is not None and parsed.label != LATEST and not _ALIAS.match(parsed.label):
        raise InvalidInput(f"{reference!r}: @{parsed.label} is not an alias", hint=f"use {_FORMS}")
    return parsed


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"model name {name!r} is not valid",
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 255)",
        )
    return name


def check_version(version: str) -> str:
    if not _VERSION.match(version) or version == LATEST:
        raise InvalidInput(
            f"model version {version!r} is not valid",
            hint="use letters, digits, '-', '_' and '.'; 'latest' is a label, not a version",
        )
    return version


def check_alias(alias: str) -> str:
    """Aliases name versions, so they must not look like versions or the ``latest`` label."""
    if alias.lower() == LATEST or not _ALIAS.match(alias) or re.fullmatch(r"[vV]\d+", alias):
        raise InvalidInput(
            f"{alias!r} cannot be an alias",
            hint="start with a letter or '_'; 'latest' and v<number> are reserved",
        )
    return alias
