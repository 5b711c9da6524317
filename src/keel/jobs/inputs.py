"""Turn a step's input bindings into values: literals, and data on the local disk.

Data can be a local path, a job output (``azureml://jobs/<job>/outputs/<name>``),
a path on the workspace's own datastore (``azureml://datastores/workspaceblobstore/
paths/<path>``), or an http(s) URL (downloaded). Every data value carries its
content digest when one can be computed, which the reuse key is built from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from keel.artifacts import ArtifactStore, safe_relative_path
from keel.errors import InvalidInput, NotFound, Unavailable
from keel.jobs.content import DigestCache, local_copy
from keel.jobs.graph import Node, Value, binding_source
from keel.specs.models import InputDecl
from keel.specs.resolved import Binding, DataRef
from keel.store import Store
from keel.store.schema import job_outputs, jobs

_JOB_OUTPUT = re.compile(r"^azureml://jobs/([^/]+)/outputs/([^/]+)/?(.*)$")
_DATASTORE = re.compile(r"^azureml://datastores/([^/]+)/paths/(.*)$")
WORKSPACE_DATASTORES = ("workspaceblobstore", "workspaceartifactstore")
DOWNLOAD_TIMEOUT_SECONDS = 60
# Later domains (datastores, data assets) plug in here: (uri) -> Value or None if not theirs.
DataPlugin = Callable[[DataRef], Value | None]


class InputResolver:
    """Resolves bindings for one run of a job graph."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        digests: DigestCache,
        cache: Path,
        plugins: list[DataPlugin] | None = None,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._digests = digests
        self._cache = cache
        self._plugins = plugins or []

    def value(
        self,
        node: Node,
        name: str,
        binding: Binding | None,
        decl: InputDecl | None,
        nodes: dict[str, Node],
    ) -> Value | None:
        """The value of input ``name`` of ``node``; None for an optional input left out."""
        if binding is None:
            return _default(decl)
        if binding.kind == "literal":
            return Value(type=decl.type if decl else "string", literal=binding.value)
        if binding.kind == "data":
            assert binding.data is not None
            return self.data(binding.data)
        found = binding_source(node, binding, nodes)
        if found is None:
            return _default(decl)
        if binding.kind == "step_output":  # lineage names the job that produced it
            upstream = nodes[node.sibling(binding.step or "")]
            found = dataclasses.replace(
                found, uri=f"azureml://jobs/{upstream.job_name}/outputs/{binding.name}"
            )
        return found

    def data(self, ref: DataRef) -> Value:
        path = ref.path
        for plugin in self._plugins:
            found = plugin(ref)
            if found is not None:
                return found
        if match := _JOB_OUTPUT.match(path):
            return self._job_output(match.group(1), match.group(2), match.group(3), ref.type)
        if match := _DATASTORE.match(path):
            return self._datastore(match.group(1), match.group(2), ref.type)
        if path.startswith(("http://", "https://")):
            return self._download(path, ref.type)
        if path.startswith("azureml:") and not path.startswith("azureml://"):
            raise NotFound(f"no data asset {path}", hint="register data with `keel data create`")
        if "://" in path:
            raise InvalidInput(f"Keel cannot read {path} yet", hint="copy it locally, or use an https URL")
        local = Path(path)
        if not local.exists():
            raise NotFound(f"input data is gone: no file or folder at {local}")
        return Value(type=ref.type, path=local, uri=str(local), digest=self._digests.digest(local))

    def _job_output(self, job_name: str, output: str, inner: str, kind: str) -> Value:
        query = (
            select(job_outputs.c.uri, job_outputs.c.digest, job_outputs.c.value, job_outputs.c.type)
            .join(jobs, jobs.c.id == job_outputs.c.job_id)
            .where(jobs.c.name == job_name, job_outputs.c.name == output)
        )
        with self._store.read() as conn:
            row = conn.execute(query).first()
        uri = f"azureml://jobs/{job_name}/outputs/{output}"
        if row is None:
            raise NotFound(f"job {job_name!r} has no output {output!r}", hint="see `keel job show`")
        if row.uri is None:
            return Value(type=row.type, literal=_json_value(row.value), uri=uri)
        path = local_copy(self._artifacts, row.uri, self._cache / "outputs")
        if inner:
            path = path / safe_relative_path(inner)
        return Value(type=kind, path=path, uri=uri, digest=row.digest if not inner else None)

    def _datastore(self, datastore: str, inner: str, kind: str) -> Value:
        if datastore not in WORKSPACE_DATASTORES:
            raise NotFound(
                f"no datastore named {datastore!r}",
                hint=f"this workspace's is {WORKSPACE_DATASTORES[0]}; add more with `keel datastore create`",
            )
        relative = safe_relative_path(inner.rstrip("/"))
        uri = f"azureml://datastores/{datastore}/paths/{relative}"
        if self._artifacts.is_local:
            path = self._artifacts.local_path(relative)
            if not path.exists():
                raise NotFound(f"nothing at {uri}")
            return Value(type=kind, path=path, uri=uri, digest=self._digests.digest(path))
        target = self._cache / "datastores" / datastore / relative
        self._artifacts.download(relative, target)
        return Value(type=kind, path=target, uri=uri, digest=self._digests.digest(target))

    def _download(self, url: str, kind: str) -> Value:
        if kind not in ("uri_file", "mltable"):
            raise InvalidInput(
                f"{url} can only be a uri_file input (a folder cannot be downloaded over http)"
            )
        folder = self._cache / "http" / hashlib.sha256(url.encode()).hexdigest()[:16]
        name = Path(url.split("?", 1)[0].rstrip("/")).name or "download"
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".part-{uuid.uuid4().hex}"
        try:
            with (
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
                open(temp, "wb") as out,
            ):
                shutil.copyfileobj(response, out, length=1024 * 1024)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            temp.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"cannot download {url}: {reason}") from None
        target = folder / name
        temp.replace(target)
        return Value(type=kind, path=target, uri=url, digest=self._digests.digest(target))


def _default(decl: InputDecl | None) -> Value | None:
    if decl is None or decl.default is None:
        return None
    return Value(type=decl.type, literal=decl.default)


def _json_value(text: str | None) -> object:
    import json

    return None if text is None else json.loads(text)
