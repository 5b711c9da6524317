"""Datastore specs: Azure ML's datastore YAML and Keel's ``local`` and ``s3`` types.

Apart from :mod:`keel.data.datastores` so that using a datastore (every copy and
every job input) does not import pydantic; only creating one reads a spec.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from keel.specs.checks import File
    from keel.specs.source import Source

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class BlobCredentials(_Spec):
    account_key: str | None = None
    sas_token: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BlobCredentials:
        if (self.account_key is None) == (self.sas_token is None):
            raise ValueError("give exactly one of account_key or sas_token")
        return self


class S3Credentials(_Spec):
    access_key_id: str
    secret_access_key: str


class _Common(_Spec):
    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    description: str | None = None
    tags: dict[str, str | int | float | bool | None] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a datastore name is letters, digits and '_', starting with a letter or '_'")
        return value


class AzureBlobSpec(_Common):
    type: Literal["azure_blob"]
    account_name: str
    container_name: str
    endpoint: str = "core.windows.net"
    protocol: Literal["https", "http"] = "https"
    credentials: BlobCredentials | None = None


class LocalSpec(_Common):
    """Keel: a folder on this machine (or a mounted share)."""

    type: Literal["local"]
    path: str


class S3Spec(_Common):
    """Keel: an S3 (or S3-compatible) bucket."""

    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    credentials: S3Credentials | None = None


DatastoreSpec = AzureBlobSpec | LocalSpec | S3Spec
SPEC_TYPES: dict[str, type[_Common]] = {"azure_blob": AzureBlobSpec, "local": LocalSpec, "s3": S3Spec}


def read_spec(path: Path) -> DatastoreSpec:
    """A datastore spec from a YAML file; problems name the file, line and field."""
    from keel.specs.source import Source, read_yaml

    raw = read_yaml(path)
    return parse_spec(raw, source=Source(path, raw))


def parse_spec(raw: Any, *, source: Source | None = None) -> DatastoreSpec:
    """A datastore spec from parsed YAML (errors name the field, and the line when known)."""
    from keel.specs.checks import File
    from keel.specs.source import Source

    source = source or Source("datastore", raw)
    if not isinstance(raw, dict):
        raise source.error((), "a datastore file must be a mapping (type, name, …)")
    kind = raw.get("type")
    model = SPEC_TYPES.get(str(kind))
    if kind is None:
        raise source.error((), "'type' is required", hint=f"one of {', '.join(SPEC_TYPES)}")
    if model is None:
        raise source.error(
            ("type",), f"unknown datastore type {kind!r}", hint=f"one of {', '.join(SPEC_TYPES)}"
        )
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        raise _spec_problem(exc, model, File(source, Path("."))) from None


def _spec_problem(exc: ValidationError, model: type[_Spec], file: File) -> Exception:
    """pydantic's first complaint, located — and never echoing a value given as a credential."""
    from keel.specs.checks import first_problem

    problem = exc.errors()[0]
    location = tuple(problem["loc"])
    if "credentials" in location and problem["type"] not in ("extra_forbidden", "missing", "value_error"):
        return file.error(location, f"{problem['msg']} (the value is not shown: it may be a secret)")
    return first_problem(exc, model, file, ())
