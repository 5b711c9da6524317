"""The gateway's Prometheus metrics: requests, latency, in-flight requests, batches, model loads.

Label children are looked up once per (endpoint, deployment, status) and kept, so
counting a request costs a dictionary hit and two increments.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class GatewayMetrics:
    """One registry per gateway (tests run several gateways in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "keel_online_requests_total",
            "Scoring requests answered, by endpoint, deployment and HTTP status code.",
            ["endpoint", "deployment", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "keel_online_request_duration_seconds",
            "Time from a request's arrival at the gateway to its answer, by endpoint and deployment.",
            ["endpoint", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "keel_online_requests_in_flight",
            "Requests sent to a deployment's workers and not yet answered.",
            ["endpoint", "deployment"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "keel_online_batch_size_rows",
            "Rows scored together in one model call (adaptive batching), by deployment.",
            ["endpoint", "deployment"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.model_load = Gauge(
            "keel_online_model_load_seconds",
            "How long a worker took to load its model and run init(), by deployment and instance.",
            ["endpoint", "deployment", "instance"],
            registry=self.registry,
        )
        self.mirrored = Counter(
            "keel_online_mirrored_requests_total",
            "Requests copied to a deployment taking mirrored traffic (their answers are dropped).",
            ["endpoint", "deployment"],
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "keel_online_worker_restarts_total",
            "Workers started again after they exited or were killed.",
            ["endpoint", "deployment"],
            registry=self.registry,
        )
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    def observe(self, endpoint: str, deployment: str, status: int, seconds: float) -> None:
        counter = self._counted.get((endpoint, deployment, status))
        if counter is None:
            counter = self._counted[(endpoint, deployment, status)] = self.requests.labels(
                endpoint, deployment, str(status)
            )
        counter.inc()
        timer = self._timed.get((endpoint, deployment))
        if timer is None:
            timer = self._timed[(endpoint, deployment)] = self.latency.labels(endpoint, deployment)
        timer.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
