"""What the CLI does against a running gateway: invoke an endpoint, wait for a deployment.

``invoke`` finds the gateway serving the workspace (``keel up`` records where it
listens), takes the endpoint's credential from the store and posts the request
file to ``/endpoints/<name>/score`` — the same path any client uses.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from keel.endpoints.online import records
from keel.endpoints.online.gateways import find_gateway
from keel.errors import InvalidInput, Unavailable
from keel.workspace import Workspace


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    deployment: str | None


def gateway_url(workspace: Workspace) -> str:
    found = find_gateway(workspace)
    if found is None:
        raise Unavailable(
            "no `keel up` is serving this workspace's endpoints",
            hint="start one with `keel up` (in another terminal, or in the background)",
        )
    return found[0]


def invoke(
    workspace: Workspace,
    endpoint: str,
    request_file: Path,
    *,
    deployment: str | None = None,
    timeout: float = 60.0,
) -> Reply:
    """Send ``request_file`` to the endpoint's ``/score`` route; the model's errors come back as the reply."""
    if not request_file.is_file():
        raise InvalidInput(f"--request-file: no file at {request_file}")
    body = request_file.read_bytes()
    credential = records.bearer_credential(workspace, endpoint)
    url = f"{gateway_url(workspace)}/endpoints/{endpoint}/score"
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {credential}")
    if deployment:
        request.add_header("azureml-model-deployment", deployment)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), response.headers.get("azureml-model-deployment"))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read(), error.headers.get("azureml-model-deployment"))
    except (urllib.error.URLError, OSError) as error:
        raise Unavailable(f"cannot reach the gateway at {url}: {getattr(error, 'reason', error)}") from None


def poke(workspace: Workspace) -> None:
    """Tell a running gateway the store changed, so it acts now instead of at its next poll."""
    found = find_gateway(workspace)
    if found is None:
        return
    request = urllib.request.Request(f"{found[0]}/-/sync", data=b"", method="POST")
    with contextlib.suppress(urllib.error.URLError, OSError):  # it polls anyway
        urllib.request.urlopen(request, timeout=2).close()


def wait_for_deployment(
    workspace: Workspace, endpoint: str, name: str, revision: int, *, timeout: float = 300.0
) -> records.Deployment | None:
    """The deployment once the running gateway reports on ``revision``; None when no gateway runs."""
    if find_gateway(workspace) is None:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = records.get_deployment(workspace, endpoint, name)
        if current.served_revision == revision and current.state in ("ready", "failed"):
            return current
        if current.revision != revision:
            return current  # superseded by another update
        time.sleep(0.05)
    raise Unavailable(
        f"deployment {name!r} did not become ready within {timeout:.0f} s", hint="see `get-logs`"
    )


def read_logs(workspace: Workspace, endpoint: str, name: str, lines: int) -> str:
    """The last ``lines`` lines of the deployment's worker log."""
    from keel.endpoints.online.gateways import log_path

    records.get_deployment(workspace, endpoint, name)
    path = log_path(workspace, endpoint, name)
    if not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) + ("\n" if text else "")
