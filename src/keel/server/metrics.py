"""Prometheus metrics for the server process, in the standard exposition format."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

registry = CollectorRegistry()
requests_total = Counter(
    "keel_http_requests_total",
    "HTTP requests served, by method, route and status code.",
    ["method", "route", "status"],
    registry=registry,
)
request_seconds = Histogram(
    "keel_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    registry=registry,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class RequestMetrics:
    """ASGI middleware counting requests and timing them, by the route that matched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            observe(scope["method"], route, status, time.perf_counter() - started)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    requests_total.labels(method, route, str(status)).inc()
    request_seconds.labels(route).observe(seconds)


async def exposition(_request: Request) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
