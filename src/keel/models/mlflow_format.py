"""The MLflow model format: a folder with an ``MLmodel`` file naming its flavors.

    MLmodel                 YAML: flavors (how to load), signature, input example, run id
    model.pkl | model.onnx  the model itself, as the flavor says
    conda.yaml, python_env.yaml, requirements.txt   the environment it needs
    input_example.json      an example input, pandas "split" orient

Keel reads what any MLflow version writes and writes what ``mlflow.pyfunc.load_model``
loads, so models travel both ways. The signature's ``inputs`` and ``outputs`` are JSON
strings inside the YAML (MLflow's own encoding); Keel parses them into lists.
"""

from __future__ import annotations

import json
import platform
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keel.errors import InvalidInput

MLMODEL = "MLmodel"
INPUT_EXAMPLE = "input_example.json"
PYFUNC = "python_function"


@dataclass(frozen=True)
class MLmodel:
    """What an MLmodel file says: its flavors' settings, signature and input example."""

    flavors: dict[str, dict[str, Any]]
    signature: dict[str, Any] | None = None  # {"inputs": [...], "outputs": [...]}
    input_example: dict[str, Any] | None = None  # saved_input_example_info
    extra: dict[str, Any] = field(default_factory=dict)

    def flavor(self, name: str) -> dict[str, Any] | None:
        return self.flavors.get(name)


def parse_mlmodel(data: bytes, where: str) -> MLmodel:
    """Parse an MLmodel file's bytes; ``where`` names it in errors (with the line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: an MLmodel file must be UTF-8 YAML") from None
    raw = _fast_yaml(text, where)
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: an MLmodel file is a mapping (flavors, signature…)")
    flavors = raw.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        line = getattr(_located_yaml(text, where), "lines", {}).get("flavors")
        raise InvalidInput(
            f"{where}{f':{line}' if line else ''}: flavors must name at least one flavor",
            hint="e.g. flavors: {sklearn: {pickled_model: model.pkl}}",
        )
    clean = {str(name): dict(conf) if isinstance(conf, dict) else {} for name, conf in flavors.items()}
    signature = _signature(raw.get("signature"), where)
    example = raw.get("saved_input_example_info")
    rest = {k: v for k, v in raw.items() if k not in ("flavors", "signature", "saved_input_example_info")}
    return MLmodel(clean, signature, dict(example) if isinstance(example, dict) else None, rest)


def _fast_yaml(text: str, where: str) -> Any:
    """libyaml's parser when present (models are opened on every worker start); problems are
    reported by the line-numbering parser."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader, C or Python
    except yaml.YAMLError:
        return _located_yaml(text, where)


def _located_yaml(text: str, where: str) -> Any:
    from keel.specs.source import parse_yaml

    return parse_yaml(text, where)


def _signature(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: signature must be a mapping with inputs and outputs")
    found: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = raw.get(part)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise InvalidInput(f"{where}: signature.{part} is not valid JSON") from None
        if value is not None and not isinstance(value, list):
            raise InvalidInput(f"{where}: signature.{part} must be a list of column or tensor specs")
        found[part] = value
    return found if found.get("inputs") is not None or found.get("outputs") is not None else None


def read_input_example(directory: Path, model: MLmodel) -> Any:
    """The saved input example (a DataFrame for "dataframe" examples), or None."""
    info = model.input_example
    if not info:
        return None
    from keel.artifacts import safe_relative_path

    path = directory / safe_relative_path(str(info.get("artifact_path") or INPUT_EXAMPLE))
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if info.get("type") == "dataframe":
        import pandas

        if isinstance(data, dict) and "dataframe_split" in data:
            data = data["dataframe_split"]
        return pandas.DataFrame(data.get("data", []), columns=data.get("columns"))
    if isinstance(data, dict) and "inputs" in data:
        import numpy

        return numpy.asarray(data["inputs"])
    return data


# -- writing -----------------------------------------------------------------------------------


def write_mlmodel(
    directory: Path,
    *,
    flavors: dict[str, dict[str, Any]],
    signature: dict[str, Any] | None,
    input_example_info: dict[str, Any] | None,
    run_id: str | None,
    artifact_path: str | None,
) -> None:
    """Write ``directory/MLmodel`` the way MLflow does (signature parts as JSON strings)."""
    import yaml

    document: dict[str, Any] = {}
    if artifact_path:
        document["artifact_path"] = artifact_path
    document["flavors"] = flavors
    document["model_size_bytes"] = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    document["model_uuid"] = uuid.uuid4().hex
    if run_id:
        document["run_id"] = run_id
    if input_example_info:
        document["saved_input_example_info"] = input_example_info
    if signature:
        document["signature"] = {
            part: None if signature.get(part) is None else json.dumps(signature[part])
            for part in ("inputs", "outputs", "params")
        }
    document["utc_time_created"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    document["keel_version"] = _keel_version()
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    (directory / MLMODEL).write_text(text, encoding="utf-8")


def write_environment(directory: Path, requirements: list[str]) -> dict[str, str]:
    """conda.yaml, python_env.yaml and requirements.txt; returns pyfunc's ``env`` setting."""
    import yaml

    python = platform.python_version()
    (directory / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    python_env = {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
    (directory / "python_env.yaml").write_text(yaml.safe_dump(python_env, sort_keys=False), encoding="utf-8")
    conda = {
        "name": "model-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": requirements}],
    }
    (directory / "conda.yaml").write_text(yaml.safe_dump(conda, sort_keys=False), encoding="utf-8")
    return {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}


def write_input_example(directory: Path, example: Any) -> dict[str, Any] | None:
    """Save an input example as MLflow does; returns the ``saved_input_example_info``."""
    if example is None:
        return None
    import pandas

    if isinstance(example, dict):
        example = pandas.DataFrame(example)
    if isinstance(example, pandas.DataFrame):
        split = {"columns": [str(c) for c in example.columns], "data": _json_rows(example)}
        (directory / INPUT_EXAMPLE).write_text(json.dumps(split), encoding="utf-8")
        (directory / "serving_input_example.json").write_text(
            json.dumps({"dataframe_split": split}, indent=2), encoding="utf-8"
        )
        return {
            "artifact_path": INPUT_EXAMPLE,
            "type": "dataframe",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
        }
    import numpy

    if isinstance(example, numpy.ndarray | list):
        inputs = numpy.asarray(example).tolist()
        (directory / INPUT_EXAMPLE).write_text(json.dumps({"inputs": inputs}), encoding="utf-8")
        return {"artifact_path": INPUT_EXAMPLE, "type": "ndarray", "format": "tf-serving"}
    raise InvalidInput(
        f"input_example must be a pandas DataFrame, a dict of columns or a numpy array, "
        f"got {type(example).__name__}"
    )


def _json_rows(frame: Any) -> list[list[Any]]:
    """Rows as JSON-ready lists (numpy scalars and timestamps made plain)."""
    return json.loads(frame.to_json(orient="split", index=False, date_format="iso"))["data"]  # type: ignore[no-any-return]


def requirement(package: str, module: str | None = None) -> str:
    """``package==version`` for an installed module, else the bare package name."""
    import importlib

    try:
        version = importlib.import_module(module or package).__version__
    except (ImportError, AttributeError):
        return package
    return f"{package}=={version}"


def _keel_version() -> str:
    from keel import __version__

    return __version__
