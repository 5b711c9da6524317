"""A warm process that forks one runner per fire, so a fired job does not pay Python's start-up.

A runner started from scratch spends about half a second importing Keel before it
touches the job; on a busy machine that is most of a schedule's latency, and for a
thousand files it is minutes of CPU. The scheduler instead keeps one child process
that has imported the runner once and does nothing else (no threads, no database
connection), and writes ``<fire id> <job name>`` lines to it; for each it forks a
runner in a new session, which outlives the scheduler and the fork server alike.
Children are reaped by the kernel (SIGCHLD ignored). If the server is gone, the
scheduler starts runners the slow way (:func:`keel.schedules.launch.spawn`); a runner
started twice still runs its fire once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
from typing import IO

from keel.workspace import Workspace

# What a runner imports (the last three serve a job's MLflow endpoint).
_WARM = (
    "keel.schedules.launch",
    "keel.jobs.submit",
    "keel.jobs.runner",
    "keel.data.job_data",
    "uvicorn",
    "keel.server.app",
    "keel.server.mlflow",
)


class RunnerForks:
    """The scheduler's end: starts the server on first use, and again if it died."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, fire_id: int, job_name: str) -> bool:
        """Ask for a runner for the fire; False when the server cannot take it."""
        for _ in range(2):
            pipe = self._pipe()
            if pipe is None:
                return False
            try:
                pipe.write(f"{fire_id} {job_name}\n".encode())
                pipe.flush()
                return True
            except (BrokenPipeError, OSError):
                self.close()
        return False

    def _pipe(self) -> IO[bytes] | None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        if self._process is None:
            config = self.workspace.config
            environment = dict(os.environ)
            environment.update(KEEL_DATABASE_URL=config.database_url, KEEL_ARTIFACTS_URL=config.artifacts_url)
            command = [sys.executable, "-m", "keel.schedules.forkserver", "--workspace", str(config.root)]
            try:
                self._process = subprocess.Popen(
                    command, stdin=subprocess.PIPE, env=environment, start_new_session=True
                )
            except OSError:
                return None
        return self._process.stdin

    def close(self) -> None:
        if self._process is not None:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


def serve(root: str) -> None:
    """Read fire lines until the scheduler closes the pipe; fork a runner for each."""
    for module in _WARM:  # imported once, here, for every child
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin.buffer:
        fields = line.decode().split()
        if len(fields) != 2 or not fields[0].isdigit():
            continue
        if os.fork() == 0:
            _child(root, int(fields[0]), fields[1])


def _child(root: str, fire_id: int, job_name: str) -> None:
    from keel.schedules.launch import run_fire

    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner waits for its steps
        log = os.path.join(root, "runs", f"{os.path.basename(job_name)}.runner.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        workspace = Workspace.open(root)
        try:
            code = run_fire(workspace, fire_id)
        finally:
            workspace.close()
    except BaseException as error:  # the child must never return into the server's loop
        sys.stderr.write(f"error: {type(error).__name__}: {error}\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.schedules.forkserver")
    parser.add_argument("--workspace", required=True)
    serve(parser.parse_args(argv).workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
