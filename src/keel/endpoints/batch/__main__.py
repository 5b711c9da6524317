"""``python -m keel.endpoints.batch run NAME``: the detached runner ``keel batch-endpoint invoke`` starts."""

from __future__ import annotations

import argparse
import sys

from keel.errors import KeelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.endpoints.batch")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a queued batch scoring job to the end")
    run_parser.add_argument("name")
    run_parser.add_argument("--workspace", required=True)
    arguments = parser.parse_args(argv)
    from keel.endpoints.batch.run import run_job
    from keel.jobs.outcome import exit_code_for
    from keel.tracking.jobs import get_job
    from keel.workspace import Workspace

    workspace = Workspace.open(arguments.workspace)
    try:
        run_job(workspace, arguments.name)
        return exit_code_for(get_job(workspace.store, arguments.name))
    except KeelError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    finally:
        workspace.close()


if __name__ == "__main__":
    sys.exit(main())
