"""Open a registered model version, proven unchanged, and score with it.

:func:`open_model` copies the version's files into a local cache folder (once per
content) and hashes every file against the manifest recorded at registration before
anything is loaded; a file that differs is named in the error and nothing is
unpickled. The bytes a flavor deserializes are hashed again as they are read, so
what is checked is exactly what is loaded.

No-code scoring (``predict``) works for ``mlflow_model`` versions:

* ``onnx``: onnxruntime, no pickle at all (``keelml[onnx]``);
* ``sklearn`` (pickle, cloudpickle or skops): loaded natively;
* any other ``python_function`` model: through the ``mlflow`` package (``keelml[mlflow]``).

A ``custom_model`` needs a scoring script; ``LoadedModel.directory`` is the folder to
give it as ``AZUREML_MODEL_DIR``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import Conflict, InvalidInput, KeelError, NotFound, Unavailable
from keel.models.files import changed_in_store, manifest_of
from keel.models.mlflow_format import MLMODEL, MLmodel, parse_mlmodel, read_input_example
from keel.models.registry import ModelVersion
from keel.models.signatures import InputSchema, input_schema, validate
from keel.workspace import Workspace

if TYPE_CHECKING:
    import numpy
    import pandas

    from keel.data.manifest import Entry, Manifest

Predictor = Callable[["pandas.DataFrame"], Any]
_CHUNK = 1024 * 1024


class LoadedModel:
    """A model version's files in a local folder, verified, ready to validate inputs and predict."""

    def __init__(self, version: ModelVersion, directory: Path, manifest: Manifest) -> None:
        self.version = version
        self.directory = directory
        self._entries = {entry.path: entry for entry in manifest.entries}
        self.mlmodel: MLmodel | None = None
        if MLMODEL in self._entries:
            self.mlmodel = parse_mlmodel(self.verified_bytes(MLMODEL), f"{version.reference}/{MLMODEL}")
        self.signature: InputSchema | None = input_schema(version.signature)
        self._predictor: Predictor | None = None

    def __repr__(self) -> str:
        return f"<LoadedModel {self.version.name}:{self.version.version} at {self.directory}>"

    @property
    def input_example(self) -> Any:
        """The saved input example (a DataFrame, for tabular models), or None."""
        if self.mlmodel is None or not self.mlmodel.input_example:
            return None
        return read_input_example(self.directory, self.mlmodel)

    def verified_bytes(self, relative: str) -> bytes:
        """A file's bytes, checked against its registered hash as they are read."""
        entry = self._entries.get(relative)
        if entry is None:
            raise NotFound(f"model {self.version.name}:{self.version.version} has no file {relative!r}")
        data = (self.directory / relative).read_bytes()
        if _hash_of(entry, data) != entry.hash:
            raise _changed(self.version, relative)
        return data

    def validate(self, frame: pandas.DataFrame) -> pandas.DataFrame:
        """The columns the signature names, in its order, typed as it says; InvalidInput names
        the missing and mistyped columns. Without a signature the frame is returned as given."""
        if self.signature is None:
            return frame
        return validate(frame, self.signature)

    def predict(
        self, frame: pandas.DataFrame
    ) -> numpy.ndarray[Any, Any] | pandas.DataFrame | pandas.Series[Any]:
        """Score ``frame`` without a scoring script (mlflow_model versions only)."""
        if self._predictor is None:
            self._predictor = self._load()
        result: Any = self._predictor(self.validate(frame))
        return result

    def _load(self) -> Predictor:
        from keel.models import flavors

        if self.version.type != "mlflow_model" or self.mlmodel is None:
            raise InvalidInput(
                f"model {self.version.name}:{self.version.version} is a {self.version.type}: "
                "scoring it needs a scoring script (code_configuration with init() and run())",
                hint="no-code scoring is for mlflow_model versions",
            )
        return flavors.load_predictor(self, self.mlmodel)


def open_model(workspace: Workspace, model: ModelVersion, *, cache: Path | None = None) -> LoadedModel:
    """Materialize ``model``'s files and verify every file's hash before anything is loaded."""
    manifest = manifest_of(workspace, model)
    base = cache if cache is not None else workspace.config.root / "cache"
    folder = _materialized(workspace, model, manifest, base)
    return LoadedModel(model, folder, manifest)


def _materialized(workspace: Workspace, model: ModelVersion, manifest: Manifest, cache: Path) -> Path:
    """A local folder holding exactly the registered files; a cached copy that was changed is
    fetched again, and a stored file that was changed is an error naming it."""
    folder = _fetch(workspace, model, manifest, cache)
    if _difference(folder, manifest) is not None:  # the cached copy was changed: fetch it again
        shutil.rmtree(folder, ignore_errors=True)
        folder = _fetch(workspace, model, manifest, cache)
        problem = _difference(folder, manifest)
        if problem is not None:
            raise _changed(model, problem)
    return folder


def _fetch(workspace: Workspace, model: ModelVersion, manifest: Manifest, cache: Path) -> Path:
    from keel.data.assets import fetch

    try:
        return fetch(workspace, manifest, cache)
    except Conflict as exc:  # a stored file's bytes differ from the manifest: copy_checked names it
        raise changed_in_store(model, exc) from None


def _difference(folder: Path, manifest: Manifest) -> str | None:
    """The first file of ``folder`` that differs from the manifest (or is extra), else None."""
    expected = {entry.path: entry for entry in manifest.entries}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    extra = sorted(present - set(expected))
    if extra:
        return extra[0]
    for relative, entry in expected.items():
        path = folder / relative
        if relative not in present or path.is_symlink() or _file_hash(entry, path) != entry.hash:
            return relative
    return None


def _file_hash(entry: Entry, path: Path) -> str:
    algorithm = entry.hash.split(":", 1)[0]
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def _hash_of(entry: Entry, data: bytes) -> str:
    algorithm = entry.hash.split(":", 1)[0]
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _changed(model: ModelVersion, relative: str) -> KeelError:
    return Conflict(
        f"model {model.name}:{model.version}: file {relative!r} does not match the hash recorded at "
        "registration; nothing was loaded",
        hint="the file changed after registration: register the model again from its source",
    )


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(
            f"this model needs the {module.partition('.')[0]} package, which is not installed",
            hint=f"pip install 'keelml[{extra}]'",
        ) from None
