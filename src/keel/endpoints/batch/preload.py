"""Import, once in the driver, the libraries every worker is about to import.

Workers are forked from the driver, so a module the driver has imported costs a
worker nothing; one it has not costs every worker its import (a second or more for
scikit-learn). Which libraries a deployment needs is read, never run: the scoring
script's ``import`` statements (its syntax tree) and the modules a pickled model
names (its opcodes). Only well-known libraries are imported here — never the
scoring script, its own modules, or anything a pickle would execute.
"""

from __future__ import annotations

import ast
import importlib
import logging
import pickletools
from pathlib import Path

# Libraries that are safe to import in the driver before forking (no threads, no state).
PRELOADABLE = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "joblib", "narwhals")
# What a worker imports on first use anyway: Arrow's pandas conversion; the dataframe layer
# scikit-learn loads on the first predict of a DataFrame.
ALWAYS = ("pandas", "pyarrow", "pyarrow.parquet", "pyarrow.pandas_compat")
FOLLOWERS = {
    "sklearn": ("narwhals.stable.v2", "narwhals._pandas_like.dataframe", "narwhals._pandas_like.namespace")
}
_PICKLE_SUFFIXES = (".pkl", ".pickle")
_MAX_PICKLE_BYTES = 64 * 1024 * 1024
_log = logging.getLogger(__name__)


def preload(*, script: Path | None, model_dir: Path | None) -> list[str]:
    """Import what the script and the model's pickles name among :data:`PRELOADABLE`; returns them."""
    wanted: set[str] = {"pandas", "pyarrow", "pyarrow.parquet"}
    if script is not None:
        wanted |= script_imports(script)
    if model_dir is not None:
        for path in sorted(model_dir.rglob("*")):
            if (
                path.suffix in _PICKLE_SUFFIXES
                and path.is_file()
                and path.stat().st_size <= _MAX_PICKLE_BYTES
            ):
                wanted |= pickled_modules(path.read_bytes())
    loaded = []
    for module in sorted(name for name in wanted if name.split(".")[0] in PRELOADABLE):
        try:
            importlib.import_module(module)
        except Exception as exc:  # the worker will meet the same problem and report it properly
            _log.debug("not preloaded: %s (%s)", module, exc)
            continue
        loaded.append(module)
    return loaded


def script_imports(script: Path) -> set[str]:
    """The absolute module names a script imports (at any depth of its syntax tree)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def pickled_modules(data: bytes) -> set[str]:
    """The modules a pickle's GLOBAL and STACK_GLOBAL opcodes name, read without unpickling."""
    found: set[str] = set()
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if isinstance(argument, str) and "UNICODE" in opcode.name:
                strings.append(argument)
            elif opcode.name == "GLOBAL" and isinstance(argument, str):
                found.add(argument.split(" ", 1)[0])
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.add(strings[-2])
    except Exception:  # not a plain pickle (compressed joblib, …): nothing to learn from it
        return found
    return found
