"""Quickstart stage 5: the champion behind an online endpoint, live traffic, a blue/green shift.

``keel up`` starts as its own process on a free loopback port, exactly as a person
starts it. The endpoint ``flights-delay`` gets two deployments of Azure ML YAML
shipped beside the pipeline: ``blue`` (the champion) and ``green`` (the same model
with adaptive batching), split 90/10. December's flights go to it one at a time from
concurrent clients; the answers' ``azureml-model-deployment`` header shows the split
actually served. Then all traffic moves to green in two steps while requests keep
flowing, and every request is counted: the stage fails if one failed. Both
deployments collect their inputs and outputs, which are read back as data assets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keel.quickstart.flights import FEATURES
from keel.workspace import Workspace

ENDPOINT = "flights-delay"
SPLIT = {"blue": 90, "green": 10}
SHIFT = ({"blue": 50, "green": 50}, {"blue": 0, "green": 100})
REQUESTS = 300  # at the 90/10 split
CONCURRENCY = 8
SHIFT_STEP_SECONDS = 0.5
START_TIMEOUT_SECONDS = 60.0


@dataclass
class Sent:
    """What the clients saw: one entry per request, in the order the answers came."""

    seconds: list[float] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)  # "" when the request failed
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def add(self, seconds: float, deployment: str) -> None:
        self.seconds.append(seconds)
        self.deployments.append(deployment)

    def fail(self, reason: str) -> None:
        self.seconds.append(0.0)
        self.deployments.append("")
        self.failures.append(reason)

    def split(self, start: int = 0) -> dict[str, int]:
        return dict(Counter(name for name in self.deployments[start:] if name))

    def percentiles(self) -> dict[str, float]:
        """p50/p95/p99 in milliseconds, over the answered requests."""
        import numpy as np

        answered = [s for s, name in zip(self.seconds, self.deployments, strict=True) if name]
        values = np.percentile(np.array(answered) * 1000, [50, 95, 99]) if answered else [0.0] * 3
        return {"p50": float(values[0]), "p95": float(values[1]), "p99": float(values[2])}


@dataclass(frozen=True)
class ServingResult:
    """What the online stage showed."""

    endpoint: str
    url: str
    deployments: dict[str, str]  # name → model name:version
    split: dict[str, int]  # requests answered per deployment at 90/10
    latency_ms: dict[str, float]
    requests_per_second: float
    shift_requests: int
    after_shift: dict[str, int]  # answered per deployment once the shift was complete
    failed: int  # over both phases
    collected: dict[str, int]  # data asset reference → rows read back
    collected_folder: str  # the datastore folder under which each deployment collects
    request_file: Path | None = None


def run_serving_stage(workspace: Workspace, console: Any, folder: Path, features: str) -> ServingResult:
    """Deploy, serve, shift, read back what was collected; ``keel up`` is stopped at the end."""
    started = time.perf_counter()
    deployments = deploy(workspace, console, folder)
    log = workspace.config.root / "quickstart" / "keel-up.log"
    with keel_up(workspace, log) as gateway:
        url = gateway.url
        bodies = request_bodies(workspace, features)  # while the gateway starts the workers
        request_file = folder / "request.json"  # one flight, for `keel online-endpoint invoke` later
        request_file.write_text(json.dumps(bodies[0], indent=2) + "\n")
        for deployment in deployments:
            _wait_ready(workspace, deployment)
        where = f"its log: {log}" if gateway.ours else "it was running already"
        console.print(f"  keel up serves them at {url} [dim]({where})[/dim]")
        first, shift, marker = asyncio.run(send_traffic(workspace, url, bodies))
    models = {
        deployment.name: deployment.model_reference.removeprefix("azureml:") for deployment in deployments
    }
    result = report(workspace, console, url=url, deployments=models, first=first, shift=shift, marker=marker)
    after = "keel up stopped" if gateway.ours else "the keel up that was running goes on"
    console.print(f"  [dim]{time.perf_counter() - started:.1f} s, {after}[/dim]")
    return replace(result, request_file=request_file)


def request_bodies(workspace: Workspace, features: str) -> list[dict[str, Any]]:
    """One single-flight ``/score`` body per December flight (features only, no label)."""
    from keel.data.loading import load

    frame = load(f"azureml:{features}", workspace=workspace).to_pandas()[FEATURES]
    rows = json.loads(frame.sample(n=min(len(frame), 1000), random_state=13).to_json(orient="values"))
    return [{"input_data": {"columns": FEATURES, "data": [row]}} for row in rows]


@dataclass(frozen=True)
class Gateway:
    url: str
    ours: bool  # started here, so stopped here


@contextmanager
def keel_up(workspace: Workspace, log: Path) -> Iterator[Gateway]:
    """``keel up --port 0`` as a process of its own; stopped as Ctrl-C stops it, so its workers
    write what they collected. A gateway that already serves this workspace is used as it is, and
    left running (its workers write every two seconds: the context ends once they have)."""
    from keel.endpoints.online.collector import FLUSH_SECONDS
    from keel.endpoints.online.gateways import find_gateway

    running = find_gateway(workspace)
    if running is not None:
        yield Gateway(running[0], ours=False)
        time.sleep(FLUSH_SECONDS + 0.5)
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:  # a file, not a pipe: a pipe nobody reads would stall the gateway
        process = subprocess.Popen(
            _up_command(workspace), stderr=output, stdout=output, start_new_session=True
        )
    try:
        yield Gateway(_wait_for_gateway(workspace, process, log), ours=True)
    finally:
        _stop(process)


def _up_command(workspace: Workspace) -> list[str]:
    """The same workspace as this process: named again only when a ``--workspace`` named it (the
    environment and the working folder, which find the others, are inherited)."""
    named = ["--workspace", str(workspace.config.root)] if workspace.config.source == "argument" else []
    return [sys.executable, "-m", "keel.cli.main", *named, "up", "--port", "0"]


def _wait_for_gateway(workspace: Workspace, process: subprocess.Popen[bytes], log: Path) -> str:
    from keel.endpoints.online.gateways import find_gateway
    from keel.errors import Unavailable

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log.read_text(errors="replace").strip().splitlines()[-1:] or ["nothing"]
            raise Unavailable(f"keel up exited ({process.returncode}): {said[0]}", hint=f"see {log}")
        found = find_gateway(workspace)
        if found is not None and found[1] == process.pid:
            return found[0]
        time.sleep(0.05)
    raise Unavailable(f"keel up did not start within {START_TIMEOUT_SECONDS:.0f} s", hint=f"see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to its process group: the workers finish, flush what they collected, and stop."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def deploy(workspace: Workspace, console: Any, folder: Path) -> list[Any]:
    """The endpoint (created once) and its two deployments (created, or updated to the champion as it
    is now), split 90/10; recorded only: ``keel up`` starts their workers (or a running one does)."""
    from keel.endpoints.online.client import poke
    from keel.endpoints.online.records import update_endpoint
    from keel.endpoints.online.specs import read_deployment

    _endpoint(workspace, folder)
    recorded = []
    for name in SPLIT:
        spec = read_deployment(folder / f"{name}.yml")
        recorded.append(_deployment(workspace, spec, folder, all_traffic=name == "blue"))
    update_endpoint(workspace, ENDPOINT, traffic=SPLIT)
    poke(workspace)
    shares = " ".join(f"{name}={share}" for name, share in SPLIT.items())
    blue, green = (deployment.model_reference.removeprefix("azureml:") for deployment in recorded)
    console.print(
        f"online endpoint {ENDPOINT}: blue → {blue}, green → {green} (adaptive batching); traffic {shares}"
    )
    return recorded


def _endpoint(workspace: Workspace, folder: Path) -> None:
    from keel.endpoints.online.records import create_endpoint, get_endpoint
    from keel.endpoints.online.specs import read_endpoint
    from keel.errors import NotFound

    try:
        get_endpoint(workspace, ENDPOINT)
    except NotFound:
        create_endpoint(workspace, read_endpoint(folder / "online-endpoint.yml"))


def _deployment(workspace: Workspace, spec: Any, folder: Path, *, all_traffic: bool) -> Any:
    from keel.endpoints.online.deployments import create_deployment, update_deployment
    from keel.endpoints.online.records import list_deployments

    if spec.name in {deployment.name for deployment in list_deployments(workspace, ENDPOINT)}:
        return update_deployment(workspace, spec, base=folder)  # a rerun: the champion may have moved
    return create_deployment(workspace, spec, base=folder, all_traffic=all_traffic)


def _wait_ready(workspace: Workspace, deployment: Any) -> Any:
    from keel.endpoints.online.client import read_logs, wait_for_deployment
    from keel.errors import Unavailable

    settled = wait_for_deployment(
        workspace, ENDPOINT, deployment.name, deployment.revision, timeout=START_TIMEOUT_SECONDS
    )
    if settled is None or settled.state != "ready":
        reason = settled.state_reason if settled is not None else "no gateway"
        logs = read_logs(workspace, ENDPOINT, deployment.name, 5).strip()
        raise Unavailable(f"deployment {deployment.name} did not start: {reason}", hint=logs or None)
    return settled


async def send_traffic(
    workspace: Workspace, url: str, bodies: list[dict[str, Any]]
) -> tuple[Sent, Sent, int]:
    """``REQUESTS`` at 90/10, then a steady flow during the shift to green; returns both records and
    the index of the first answer that came once the shift was complete."""
    import httpx

    from keel.endpoints.online.records import bearer_credential

    headers = {"Authorization": f"Bearer {bearer_credential(workspace, ENDPOINT)}"}
    score = f"{url}/endpoints/{ENDPOINT}/score"
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10.0) as client:
        first = Sent()
        started = time.perf_counter()
        await _clients(client, score, bodies, sent=first, done=lambda number: number >= REQUESTS)
        first.wall_seconds = time.perf_counter() - started
        shift, stop = Sent(), asyncio.Event()
        flowing = asyncio.create_task(
            _clients(
                client, score, bodies, sent=shift, done=lambda _: stop.is_set(), concurrency=CONCURRENCY // 2
            )
        )
        marker = await _shift(workspace, shift)
        await asyncio.sleep(SHIFT_STEP_SECONDS)
        stop.set()
        await flowing
    return first, shift, marker


async def _clients(
    client: Any,
    score: str,
    bodies: list[dict[str, Any]],
    *,
    sent: Sent,
    done: Callable[[int], bool],
    concurrency: int = CONCURRENCY,
) -> None:
    """``concurrency`` clients, each sending one request after another until ``done(number)`` says the
    next request's number is past the end."""
    import httpx

    counter = iter(range(10**9))

    async def one_client() -> None:
        while not done(number := next(counter)):
            body = bodies[number % len(bodies)]
            started = time.perf_counter()
            try:
                answer = await client.post(score, json=body)
            except httpx.HTTPError as exc:
                sent.fail(f"{type(exc).__name__}: {exc}")
                continue
            if answer.status_code != 200:
                sent.fail(f"{answer.status_code}: {answer.text[:200]}")
                continue
            sent.add(time.perf_counter() - started, answer.headers.get("azureml-model-deployment", "?"))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))


async def _shift(workspace: Workspace, sent: Sent) -> int:
    """Each step of ``SHIFT`` a moment apart, while the clients keep sending; returns how many
    answers had come when the last step was surely in force (the gateway was told at once)."""
    from keel.endpoints.online.client import poke
    from keel.endpoints.online.records import update_endpoint

    for traffic in SHIFT:
        await asyncio.sleep(SHIFT_STEP_SECONDS)
        await asyncio.to_thread(update_endpoint, workspace, ENDPOINT, traffic=traffic)
        await asyncio.to_thread(poke, workspace)
    await asyncio.sleep(0.5)  # requests routed before the change finish where they are
    return len(sent.seconds)


def report(
    workspace: Workspace,
    console: Any,
    *,
    url: str,
    deployments: dict[str, str],
    first: Sent,
    shift: Sent,
    marker: int,
) -> ServingResult:
    """Print what the clients saw and what the deployments collected (read once ``keel up`` stopped,
    so every worker has flushed)."""
    latency = first.percentiles()
    answered = sum(first.split().values())
    rate = answered / first.wall_seconds if first.wall_seconds else 0.0
    split = first.split()
    shares = ", ".join(
        f"{name} {split.get(name, 0)} ({split.get(name, 0) / max(answered, 1):.0%})" for name in SPLIT
    )
    console.print(
        f"  {answered} requests from {CONCURRENCY} concurrent clients in {first.wall_seconds:.1f} s "
        f"({rate:,.0f}/s): latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, "
        f"p99 {latency['p99']:.1f} ms; answered by {shares}"
    )
    steps = " → ".join(f"blue={t['blue']} green={t['green']}" for t in SHIFT)
    after = shift.split(marker)
    failed = len(first.failures) + len(shift.failures)
    console.print(
        f"  shift to green under load ({steps}): {len(shift.seconds)} requests during it, "
        f"{after.get('green', 0)} of the {sum(after.values())} sent after it answered by green; "
        f"[bold]{failed} failed[/bold]"
    )
    for reason in (first.failures + shift.failures)[:3]:
        console.print(f"    failed: {reason}", markup=False)
    collected, folder = read_collected(workspace, console)
    return ServingResult(
        endpoint=ENDPOINT,
        url=url,
        deployments=deployments,
        split=split,
        latency_ms=latency,
        requests_per_second=rate,
        shift_requests=len(shift.seconds),
        after_shift=after,
        failed=failed,
        collected=collected,
        collected_folder=folder,
    )


def read_collected(workspace: Workspace, console: Any) -> tuple[dict[str, int], str]:
    """Each deployment's collected inputs and outputs, read back as the data assets they are."""
    from keel.data.assets import resolve_asset
    from keel.data.loading import load

    rows: dict[str, int] = {}
    for name in SPLIT:
        for collection in ("model_inputs", "model_outputs"):
            reference = f"azureml:{ENDPOINT}-{name}-{collection}:1"
            rows[reference] = load(reference, workspace=workspace).num_rows
    where = resolve_asset(workspace, f"azureml:{ENDPOINT}-blue-model_inputs:1").path
    folder = where.rsplit("/", 2)[0]  # …/modelDataCollector/<endpoint>: a folder per deployment below
    counts = ", ".join(
        f"{reference.removeprefix('azureml:')} {count} rows" for reference, count in rows.items()
    )
    console.print(
        f"  collected as Parquet in hourly partitions under {_on_disk(workspace, folder)}: {counts}"
    )
    console.print(
        f'  read them back: keel.data.load("azureml:{ENDPOINT}-blue-model_inputs:1").to_pandas()',
        markup=False,
    )
    return rows, folder


def _on_disk(workspace: Workspace, uri: str) -> str:
    """A datastore path as the local folder it is, when it is one."""
    from keel.data.locations import resolve_location

    location = resolve_location(workspace, uri)
    return location.path if location.is_local else uri
