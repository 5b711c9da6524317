"""Which deployment answers: traffic weights, the ``azureml-model-deployment`` header, mirroring.

A :class:`Route` is immutable and replaced whole when an endpoint changes, so a
traffic update takes effect for the next request while requests already routed
finish where they are; no lock is held on the request path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from keel.endpoints.online.auth import Verifier


class RouteError(Exception):
    """The request cannot be routed; the message says why and the status how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """One endpoint's routing: its credentials check, live split and mirror."""

    endpoint: str
    verifier: Verifier | None
    live: tuple[tuple[float, str], ...]  # cumulative percentage, deployment
    mirror: tuple[str, float] | None
    deployments: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        endpoint: str,
        verifier: Verifier | None,
        traffic: dict[str, int],
        mirror: dict[str, int],
        deployments: set[str],
    ) -> Route:
        cumulative = 0.0
        live = []
        for name, share in sorted(traffic.items()):
            if share > 0:
                cumulative += share
                live.append((cumulative, name))
        mirrored = next(((name, share / 100) for name, share in mirror.items() if share > 0), None)
        return cls(endpoint, verifier, tuple(live), mirrored, frozenset(deployments))

    def choose(self, requested: str | None, draw: float | None = None) -> str:
        """The deployment for one request: the header's, else a weighted draw."""
        if requested:
            if requested not in self.deployments:
                known = ", ".join(sorted(self.deployments)) or "none"
                raise RouteError(
                    404, f"endpoint {self.endpoint!r} has no deployment {requested!r} (deployments: {known})"
                )
            return requested
        if not self.live:
            raise RouteError(
                404,
                f"endpoint {self.endpoint!r} sends no traffic to any deployment; set its traffic, or name a "
                "deployment in the azureml-model-deployment header",
            )
        point = (random.random() if draw is None else draw) * self.live[-1][0]
        for threshold, name in self.live:
            if point < threshold:
                return name
        return self.live[-1][1]

    def mirror_to(self, chosen: str, draw: float | None = None) -> str | None:
        """The deployment that also gets a copy of this request, if any."""
        if self.mirror is None or self.mirror[0] == chosen:
            return None
        return self.mirror[0] if (random.random() if draw is None else draw) < self.mirror[1] else None
