"""Write docs/reference/cli.md from the commands themselves (a test keeps it current).

python scripts/cli_reference.py          # rewrite the file
python scripts/cli_reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from keel.cli.main import app

TARGET = Path(__file__).resolve().parent.parent / "docs" / "reference" / "cli.md"


def _walk(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every command under ``command`` (Typer's click objects, duck-typed)."""
    found = [(path, command)]
    if hasattr(command, "commands"):
        for name in sorted(command.commands):
            found += _walk(command.commands[name], [*path, name])
    return found


def _option_line(param: Any) -> str:
    if param.param_type_name == "argument":
        kind = "argument" if param.required else "argument, optional"
        help_text = getattr(param, "help", None)
        return f"- `{param.human_readable_name}` ({kind}){': ' + help_text if help_text else ''}"
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    text = f"- {names}: {param.help or ''}".rstrip(": ")
    if param.envvar:
        text += f" [env: `{param.envvar}`]"
    shown_default = param.default not in (None, False, "", ()) and not param.is_flag
    if shown_default:
        default = getattr(param.default, "value", param.default)
        text += f" (default: `{default}`)"
    return text


def render() -> str:
    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the commands by `scripts/cli_reference.py`; do not edit by hand.",
        "",
    ]
    for path, command in _walk(root, ["keel"]):
        if path != ["keel"] and hasattr(command, "commands"):
            lines += [f"## {' '.join(path)}", "", (command.help or "").strip(), ""]
            continue
        lines += [f"## {' '.join(path)}", "", (command.help or "").strip(), ""]
        params = [p for p in command.params if p.name not in ("help",)]
        if params:
            lines += [_option_line(p) for p in params] + [""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if TARGET.read_text() == text else 1)
    TARGET.write_text(text)
