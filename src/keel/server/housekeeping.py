"""The background work of a long-running server: webhook deliveries and approval timeouts.

``keel server`` (and ``keel up``) run one :class:`Housekeeping` thread: every second it
sends the webhook deliveries that are due, and every few seconds it settles approvals
(deciding those whose timeout passed and resuming their pipelines), so nothing waits
for a person to look.
"""

from __future__ import annotations

import logging
import threading
import time

from keel.workspace import Workspace

_log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, workspace: Workspace, *, interval: float = 1.0, settle_every: float = 5.0) -> None:
        self._workspace = workspace
        self._interval = interval
        self._settle_every = settle_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from keel.approvals import settle
        from keel.webhooks import deliver_due

        settled = 0.0
        while not self._stop.wait(self._interval):
            try:
                if time.monotonic() - settled >= self._settle_every:
                    settled = time.monotonic()
                    settle(self._workspace)
                deliver_due(self._workspace)
            except Exception:  # try again next round; one bad round must not end the thread
                _log.exception("housekeeping round failed")
