"""Find the workspace a command or script works in, and open its store and artifacts.

Resolution order, first match wins:

1. an explicit path (``--workspace`` or ``Workspace.open(path)``);
2. the ``KEEL_WORKSPACE`` environment variable;
3. a ``keel.yaml`` in the current directory or one of its parents;
4. ``.keel/`` in the current directory.

The embedded default keeps a SQLite database and an artifact folder inside the
workspace folder. A team setup names a PostgreSQL URL and an fsspec URL, in
``keel.yaml`` or through ``KEEL_DATABASE_URL`` / ``KEEL_ARTIFACTS_URL`` (the
environment wins, so secrets need not live in a file). ``${VAR}`` in keel.yaml
values is replaced from the environment for the same reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInput

if TYPE_CHECKING:
    from keel.artifacts import ArtifactStore
    from keel.store import Store

CONFIG_FILE = "keel.yaml"
DEFAULT_FOLDER = ".keel"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_KEYS = {"workspace", "database_url", "artifacts_url", "heartbeat_timeout_seconds"}
# Nested sections, kept as written (with ${VAR} expanded) for the domain that owns each to check.
SECTION_KEYS = {"server", "webhooks"}


@dataclass(frozen=True)
class WorkspaceConfig:
    """Where a workspace keeps its metadata and artifacts."""

    root: Path
    database_url: str
    artifacts_url: str
    heartbeat_timeout_seconds: float = 60.0
    source: str = "default"
    sections: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


def resolve_workspace(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> WorkspaceConfig:
    """Work out which workspace applies, without touching the disk beyond reading keel.yaml."""
    env = os.environ if environ is None else environ
    here = (cwd or Path.cwd()).resolve()
    settings: dict[str, Any] = {}
    if path is not None:
        root, source = (here / Path(path)).resolve(), "argument"
    elif env.get("KEEL_WORKSPACE"):
        root, source = (here / Path(env["KEEL_WORKSPACE"])).resolve(), "KEEL_WORKSPACE"
    elif (config_file := _find_config_file(here)) is not None:
        settings = _read_config_file(config_file, env)
        folder = settings.get("workspace", DEFAULT_FOLDER)
        root, source = (config_file.parent / str(folder)).resolve(), str(config_file)
    else:
        root, source = here / DEFAULT_FOLDER, "default"
    database_url = env.get("KEEL_DATABASE_URL") or settings.get("database_url")
    artifacts_url = env.get("KEEL_ARTIFACTS_URL") or settings.get("artifacts_url")
    return WorkspaceConfig(
        root=root,
        database_url=str(database_url or f"sqlite:///{root / 'keel.db'}"),
        artifacts_url=str(artifacts_url or (root / "artifacts").as_uri()),
        heartbeat_timeout_seconds=float(settings.get("heartbeat_timeout_seconds", 60.0)),
        source=source,
        sections={key: settings[key] for key in SECTION_KEYS if key in settings},
    )


def read_sections(config_file: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The nested sections of a keel.yaml, for a process handed the workspace by path (a runner)."""
    settings = _read_config_file(config_file, os.environ if environ is None else environ)
    return {key: settings[key] for key in SECTION_KEYS if key in settings}


def _find_config_file(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def _read_config_file(config_file: Path, env: Mapping[str, str]) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_file}:{mark.line + 1}" if mark is not None else str(config_file)
        raise InvalidInput(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{config_file}: expected a mapping of settings at the top level")
    unknown = sorted(set(loaded) - _KNOWN_KEYS - SECTION_KEYS)
    if unknown:
        raise InvalidInput(
            f"{config_file}: unknown setting {unknown[0]!r}",
            hint=f"known settings: {', '.join(sorted(_KNOWN_KEYS | SECTION_KEYS))}",
        )
    return {
        key: _expand_nested(value, env, config_file, key)
        if key in SECTION_KEYS
        else _expand_env(str(value), env, config_file, key)
        for key, value in loaded.items()
    }


def _expand_nested(value: Any, env: Mapping[str, str], config_file: Path, key: str) -> Any:
    """A section as written, with ``${VAR}`` expanded in its strings."""
    if isinstance(value, dict):
        return {k: _expand_nested(v, env, config_file, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_nested(v, env, config_file, f"{key}[{i}]") for i, v in enumerate(value)]
    return _expand_env(value, env, config_file, key) if isinstance(value, str) else value


def _expand_env(value: str, env: Mapping[str, str], config_file: Path, key: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise InvalidInput(f"{config_file}: {key} refers to ${{{name}}}, which is not set")
        return env[name]

    return _ENV_REFERENCE.sub(substitute, value)


@dataclass
class Workspace:
    """An opened workspace: its configuration, metadata store and artifact store."""

    config: WorkspaceConfig
    _store: Store | None = field(default=None, repr=False)
    _artifacts: ArtifactStore | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(resolve_workspace(path))

    @property
    def store(self) -> Store:
        """The metadata store, created and migrated on first use."""
        if self._store is None:
            from keel.store import open_store

            if self.config.is_embedded:
                self.config.root.mkdir(parents=True, exist_ok=True)
            self._store = open_store(self.config.database_url)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            from keel.artifacts import ArtifactStore

            self._artifacts = ArtifactStore(self.config.artifacts_url)
        return self._artifacts

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
