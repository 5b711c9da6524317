"""An MLflow-compatible tracking endpoint on loopback, for the processes a run starts.

Every job process gets ``MLFLOW_TRACKING_URI`` pointing here and ``MLFLOW_RUN_ID``
naming its own job, so ``mlflow.log_metric`` and ``mlflow.autolog()`` in a step
script land on that step. It starts on first need (a run of cached or in-process
steps never pays for it) and stops with the run.
"""

from __future__ import annotations

import threading
import time

from keel.errors import Unavailable
from keel.workspace import Workspace


class TrackingEndpoint:
    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._lock = threading.Lock()
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    def url(self) -> str:
        """The endpoint's base URL, starting it if this is the first call."""
        with self._lock:
            if self._url is None:
                self._url = self._start()
            return self._url

    def _start(self) -> str:
        import uvicorn

        from keel.server.app import create_app

        config = uvicorn.Config(
            create_app(self._workspace),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="keel-tracking-endpoint", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise Unavailable("could not start the tracking endpoint for the job's processes")
            time.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            # uvicorn notices the flag within 0.1 s and then lingers another 0.1 s;
            # nothing here needs to wait for that (the thread is a daemon).
            server.should_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=0.05)
        self._server = self._thread = None
        self._url = None
