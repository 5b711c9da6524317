"""``python -m keel.jobs run NAME``: the detached runner ``keel job create`` starts."""

from __future__ import annotations

import argparse
import sys

from keel.errors import KeelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a queued job to the end")
    run_parser.add_argument("name")
    run_parser.add_argument("--workspace", required=True)
    run_parser.add_argument("--rerun-of", default=None)
    arguments = parser.parse_args(argv)
    from keel.jobs.outcome import exit_code_for
    from keel.jobs.submit import previous_steps, run
    from keel.tracking.jobs import get_job
    from keel.workspace import Workspace

    workspace = Workspace.open(arguments.workspace)
    try:
        previous = previous_steps(workspace, arguments.rerun_of) if arguments.rerun_of else None
        run(workspace, arguments.name, previous=previous)
        return exit_code_for(get_job(workspace.store, arguments.name))
    except KeelError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    finally:
        workspace.close()


if __name__ == "__main__":
    sys.exit(main())
