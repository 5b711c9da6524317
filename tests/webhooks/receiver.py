"""A real webhook receiver: an HTTP server on 127.0.0.1 that checks every signature it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from keel.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify


@dataclass
class Received:
    event_type: str
    delivery: str
    body: dict[str, Any]
    signed: bool  # the signature checked out with the receiver's secret


@dataclass
class Receiver:
    url: str
    secret: str
    fail_first: int = 0  # answer 500 to this many requests before accepting
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    def events(self) -> list[str]:
        with self.lock:
            return [r.event_type for r in self.requests if r.signed]


@contextmanager
def receiver(secret: str = "s3cret-for-tests", *, fail_first: int = 0) -> Iterator[Receiver]:
    """Serve on a free loopback port until the block ends."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got = state["receiver"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            signed = verify(got.secret, body, self.headers.get(SIGNATURE_HEADER))
            with got.arrived:
                attempt = len(got.requests)
                event, delivery = self.headers.get(EVENT_HEADER, ""), self.headers.get(DELIVERY_HEADER, "")
                got.requests.append(Received(event, delivery, json.loads(body), signed))
                got.arrived.notify_all()
            status = 500 if attempt < got.fail_first else (200 if signed else 401)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", secret, fail_first)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
