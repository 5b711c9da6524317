"""``python -m keel.jobs run|resume NAME``: the detached runner ``keel job create`` (or a decision
on a paused pipeline) starts."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from keel.errors import KeelError

if TYPE_CHECKING:
    from keel.workspace import Workspace

_WEBHOOK_FLUSH_SECONDS = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a queued job to the end")
    run_parser.add_argument("name")
    run_parser.add_argument("--workspace", required=True)
    run_parser.add_argument("--rerun-of", default=None)
    run_parser.add_argument("--config", default=None, help="the keel.yaml the workspace came from")
    resume_parser = commands.add_parser("resume", help="run what remains of a paused pipeline")
    resume_parser.add_argument("name")
    resume_parser.add_argument("--workspace", required=True)
    resume_parser.add_argument("--config", default=None)
    arguments = parser.parse_args(argv)
    from keel.jobs.outcome import exit_code_for
    from keel.jobs.submit import previous_steps, resume, run
    from keel.tracking.jobs import get_job

    try:
        workspace = _open(arguments.workspace, arguments.config)
    except KeelError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    try:
        if arguments.command == "resume":
            resume(workspace, arguments.name)
        else:
            previous = previous_steps(workspace, arguments.rerun_of) if arguments.rerun_of else None
            run(workspace, arguments.name, previous=previous)
        return exit_code_for(get_job(workspace.store, arguments.name))
    except KeelError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    finally:
        _flush_webhooks(workspace)
        workspace.close()


def _open(root: str, config_file: str | None) -> Workspace:
    """The workspace at ``root``, with the settings of the keel.yaml it was found through."""
    from pathlib import Path

    from keel.workspace import Workspace, read_sections

    workspace = Workspace.open(root)
    if config_file is not None:
        sections = read_sections(Path(config_file))
        workspace = Workspace(dataclasses.replace(workspace.config, sections=sections))
    return workspace


def _flush_webhooks(workspace: Workspace) -> None:
    """A detached runner may wait a while for its events' retries; nobody waits for it."""
    from keel.webhooks import flush

    try:
        flush(workspace, within_seconds=_WEBHOOK_FLUSH_SECONDS)
    except KeelError as error:
        sys.stderr.write(f"webhooks: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
