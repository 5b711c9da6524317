"""A deployment's worker process: load the model once, then answer frames until the socket closes.

The loop is plain blocking I/O on one socket: read what has arrived, score it,
write every answer with one ``sendall``. A no-code deployment with
``max_batch_size`` > 1 scores all table requests that are waiting (and those that
arrive within ``max_batch_wait_ms``) with one predict call. A request that fails
gets its own error answer; the worker goes on. Collected data is handed to a
background thread, never written on the request path.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.endpoints.online import frames
from keel.endpoints.online.tables import BadRequest, Rows, ScoringError, json_bytes, mlflow_rows

if TYPE_CHECKING:  # numpy and pandas are the workers' business; the gateway never imports them
    from keel.endpoints.online.scoring import Outputs, Scorer

RECEIVE_BYTES = 1 << 20


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, picklable, so it can start in a forked process."""

    root: str
    database_url: str
    artifacts_url: str
    endpoint: str
    deployment: str
    revision: int
    instance: int
    settings: dict[str, Any]
    log_path: str

    @property
    def label(self) -> str:
        return f"{self.endpoint}/{self.deployment}#{self.instance}"


def main(config: WorkerConfig, connection: socket.socket) -> None:
    """Entry point in the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the gateway, which stops us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _redirect_output(config.log_path)
    connection.setblocking(True)
    _log(config, f"starting revision {config.revision}")
    started = time.perf_counter()
    try:
        workspace = _workspace(config)
        scorer, collector = _load(workspace, config)
    except BaseException as exc:
        from keel.errors import KeelError

        message = str(exc) if isinstance(exc, KeelError) else f"{type(exc).__name__}: {exc}"
        _log(config, f"failed to start: {message}")
        traceback.print_exc()
        _send(connection, frames.FAILED, {"message": str(message)})
        os._exit(1)
    seconds = time.perf_counter() - started
    _log(config, f"ready in {seconds:.3f} s, pid {os.getpid()}")
    _send(connection, frames.READY, {"load_seconds": seconds, **scorer.metadata()})
    try:
        model = (config.endpoint, config.deployment)
        Loop(connection, scorer, collector, config.settings["request"], model).run()
    finally:
        if collector is not None:
            collector.close()
        _log(config, "stopped")


def _redirect_output(log_path: str) -> None:
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def _log(config: WorkerConfig, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    sys.stderr.write(f"{stamp} [{config.label}] {message}\n")
    sys.stderr.flush()


def _workspace(config: WorkerConfig) -> Any:
    from keel.workspace import Workspace, WorkspaceConfig

    return Workspace(
        WorkspaceConfig(
            root=Path(config.root), database_url=config.database_url, artifacts_url=config.artifacts_url
        )
    )


def _load(workspace: Any, config: WorkerConfig) -> tuple[Scorer, Any]:
    try:
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except ModuleNotFoundError as exc:
        from keel.errors import Unavailable

        raise Unavailable(f"serving models needs {exc.name}", hint="pip install 'keelml[serving]'") from None
    from keel.endpoints.online.scoring import NoCodeScorer, ScriptScorer, azureml_environment, load_script
    from keel.models.registry import resolve_model
    from keel.models.scoring import open_model

    settings = config.settings
    os.environ.update(settings.get("environment_variables") or {})
    model = settings["model"]
    version = resolve_model(workspace, f"azureml:{model['name']}:{model['version']}")
    loaded = open_model(workspace, version, cache=Path(config.root) / "cache" / "models")
    code = settings.get("code")
    scorer: Scorer
    if code is None:
        azureml_environment(loaded.directory, None)
        scorer = NoCodeScorer(loaded)
    else:
        from keel.jobs.content import cas_path, local_copy

        folder = local_copy(workspace.artifacts, cas_path(code["digest"]), Path(config.root) / "cache")
        azureml_environment(loaded.directory, code["scoring_script"])
        scorer = ScriptScorer(load_script(folder, code["scoring_script"]))
    collector = None
    if settings.get("data_collector"):
        from keel.endpoints.online.collector import Collector

        collector = Collector(workspace, settings["data_collector"], f"{config.deployment}-{config.instance}")
    return scorer, collector


def _send(connection: socket.socket, kind: int, document: dict[str, Any]) -> None:
    connection.sendall(frames.frame(kind, 0, json_bytes(document)))


class Loop:
    """Read frames, answer them; batch table requests when the deployment asks for it."""

    def __init__(
        self,
        connection: socket.socket,
        scorer: Scorer,
        collector: Any,
        request: dict[str, Any],
        model: tuple[str, str] = ("", ""),
    ) -> None:
        self.connection = connection
        self.model_name, self.model_version = model
        self.scorer = scorer
        self.collector = collector
        self.max_batch = int(request.get("max_batch_size", 1)) if scorer.batchable else 1
        self.batch_wait = float(request.get("max_batch_wait_ms", 0)) / 1000
        self.buffer = frames.FrameBuffer()
        self.pending: list[tuple[int, int, bytes]] = []

    def run(self) -> None:
        while self._receive(block=True):
            self.pending.extend(self.buffer.frames())
            if self.max_batch > 1 and self.batch_wait > 0:
                self._fill_batch()
            work, self.pending = self.pending, []
            answers = self._answer(work)
            if answers:
                self.connection.sendall(b"".join(answers))

    def _receive(self, *, block: bool) -> bool:
        data = self.connection.recv(RECEIVE_BYTES) if block else self._receive_now()
        if data is None:
            return True
        if not data:
            return False
        self.buffer.feed(data)
        return True

    def _receive_now(self) -> bytes | None:
        try:
            return self.connection.recv(RECEIVE_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    def _fill_batch(self) -> None:
        """Wait up to ``max_batch_wait_ms`` for more requests while the batch is not full."""
        deadline = time.perf_counter() + self.batch_wait
        while len(self.pending) < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or not select.select([self.connection], [], [], remaining)[0]:
                return
            if not self._receive(block=False):
                return
            self.pending.extend(self.buffer.frames())

    def _answer(self, work: list[tuple[int, int, bytes]]) -> list[bytes]:
        answers: list[bytes] = []
        tables: list[tuple[frames.Request, Any]] = []
        for kind, request_id, payload in work:
            if kind == frames.PING:
                answers.append(frames.frame(frames.PONG, request_id, b"{}"))
                continue
            request = frames.parse_request(kind, request_id, payload)
            if kind == frames.SCORE and not self.scorer.batchable:
                answers.append(self._score(request))
                continue
            try:
                tables.append((request, _parse(request, self.scorer)))
            except BadRequest as exc:
                answers.append(_error(request, exc.status, "invalid_input", exc.message))
            except Exception as exc:  # a shape no check foresaw is still the request's fault
                message = f"the request body is malformed ({type(exc).__name__}: {exc})"
                answers.append(_error(request, 400, "invalid_input", message))
        if tables:
            answers.extend(self._score_tables(tables))
        return answers

    def _score(self, request: frames.Request) -> bytes:
        try:
            body, _rows = self.scorer.score_raw(request.body)
        except BadRequest as exc:
            return _error(request, exc.status, "invalid_input", exc.message)
        except ScoringError as exc:
            return _error(request, 500, "scoring_error", str(exc))
        except Exception as exc:  # never let one request take the worker down
            return _error(request, 500, "internal_error", f"answering failed: {type(exc).__name__}: {exc}")
        self._collect_raw(request, body)
        return _ok(request, body, frames.JSON)

    def _score_tables(self, tables: list[tuple[frames.Request, Any]]) -> list[bytes]:
        answers: list[bytes] = []
        for group in _groups(tables, self.max_batch):
            try:
                answers.extend(self._score_group(group))
            except Exception as exc:  # never let one batch take the worker down
                message = f"answering failed: {type(exc).__name__}: {exc}"
                answers.extend(_error(request, 500, "internal_error", message) for request, _ in group)
        return answers

    def _score_group(self, group: list[tuple[frames.Request, Any]]) -> list[bytes]:
        rows = [_table_of(parsed) for _, parsed in group]
        combined = Rows(rows[0].columns, [row for table in rows for row in table.rows])
        try:
            outputs = self.scorer.score_rows(combined)
        except (BadRequest, ScoringError) as exc:
            if len(group) > 1:  # one bad request must not fail its batch-mates: score them alone
                return [answer for item in group for answer in self._score_group([item])]
            status, code = (
                (exc.status, "invalid_input") if isinstance(exc, BadRequest) else (500, "scoring_error")
            )
            message = exc.message if isinstance(exc, BadRequest) else str(exc)
            return [_error(request, status, code, message) for request, _ in group]
        answers = []
        start = 0
        for (request, parsed), table in zip(group, rows, strict=True):
            stop = start + len(table.rows)
            answers.append(
                self._encode(request, parsed, table, outputs.sliced(start, stop), len(combined.rows))
            )
            start = stop
        return answers

    def _encode(
        self, request: frames.Request, parsed: Any, table: Rows, outputs: Outputs, batch: int
    ) -> bytes:
        from keel.endpoints.online import oip
        from keel.endpoints.online.tables import azure_answer, mlflow_answer

        try:
            if request.kind == frames.INFER:
                body, header = oip.infer_answer(outputs.columns, parsed, self.model_name, self.model_version)
                content = frames.OCTET if header is not None else frames.JSON
                answer = _ok(request, body, content, batch=batch, header_length=header or 0)
            elif request.kind == frames.INVOCATIONS:
                body = mlflow_answer(outputs.predictions())
                answer = _ok(request, body, frames.JSON, batch=batch)
            else:
                body = azure_answer(outputs.predictions())
                answer = _ok(request, body, frames.JSON, batch=batch)
        except BadRequest as exc:
            return _error(request, exc.status, "invalid_input", exc.message)
        self._collect(request, table, outputs)
        return answer

    def _collect(self, request: frames.Request, table: Rows, outputs: Outputs) -> None:
        collector = self.collector
        if collector is None or not collector.sampled():
            return
        if collector.wants("model_inputs"):
            names = table.columns or [str(i) for i in range(len(table.rows[0]) if table.rows else 0)]
            collector.add(
                "model_inputs",
                request.correlation_id,
                [dict(zip(names, r, strict=False)) for r in table.rows],
            )
        if collector.wants("model_outputs"):
            predictions = outputs.predictions()
            records = [p if isinstance(p, dict) else {"prediction": p} for p in predictions]
            collector.add("model_outputs", request.correlation_id, records)
        self._collect_payloads(request, None)

    def _collect_raw(self, request: frames.Request, answer: bytes) -> None:
        collector = self.collector
        if collector is None or not collector.sampled():
            return
        if collector.wants("model_inputs"):
            collector.add("model_inputs", request.correlation_id, _payload_records(request.body))
        if collector.wants("model_outputs"):
            collector.add(
                "model_outputs", request.correlation_id, [{"payload": answer.decode("utf-8", "replace")}]
            )
        self._collect_payloads(request, answer)

    def _collect_payloads(self, request: frames.Request, answer: bytes | None) -> None:
        collector = self.collector
        if collector.wants("request"):
            collector.add(
                "request", request.correlation_id, [{"payload": request.body.decode("utf-8", "replace")}]
            )
        if collector.wants("response") and answer is not None:
            collector.add(
                "response", request.correlation_id, [{"payload": answer.decode("utf-8", "replace")}]
            )


def _payload_records(body: bytes) -> list[dict[str, Any]]:
    """A scoring script's request as rows when it is a table, else as its text."""
    from keel.endpoints.online.tables import azure_rows

    try:
        table = azure_rows(body)
    except BadRequest:
        return [{"payload": body.decode("utf-8", "replace")}]
    names = table.columns or [str(i) for i in range(len(table.rows[0]) if table.rows else 0)]
    return [dict(zip(names, row, strict=False)) for row in table.rows]


def _parse(request: frames.Request, scorer: Scorer) -> Any:
    from keel.endpoints.online import oip
    from keel.endpoints.online.tables import azure_rows

    if request.kind == frames.INFER:
        header = None if request.header_length == frames.NO_HEADER else request.header_length
        return oip.parse_infer(request.body, header, scorer.signature_columns)
    if request.kind == frames.INVOCATIONS:
        return mlflow_rows(request.body, csv_body=request.content == frames.CSV)
    return azure_rows(request.body)


def _groups(tables: list[tuple[frames.Request, Any]], limit: int) -> list[list[tuple[frames.Request, Any]]]:
    """Requests with equal columns, in arrival order, up to ``limit`` rows a group (one request at least)."""
    groups: list[list[tuple[frames.Request, Any]]] = []
    sizes: list[int] = []
    for item in tables:
        table = _table_of(item[1])
        placed = False
        for index, group in enumerate(groups):
            first = _table_of(group[0][1])
            if first.columns == table.columns and sizes[index] + len(table.rows) <= limit:
                group.append(item)
                sizes[index] += len(table.rows)
                placed = True
                break
        if not placed:
            groups.append([item])
            sizes.append(len(table.rows))
    return groups


def _table_of(parsed: Any) -> Rows:
    """The rows of a parsed request (an OIP request carries them beside its options)."""
    return parsed if isinstance(parsed, Rows) else parsed.rows


def _ok(
    request: frames.Request, body: bytes, content: int, *, batch: int = 1, header_length: int = 0
) -> bytes:
    payload = frames.response_payload(200, content, body, batch=batch, header_length=header_length)
    return frames.frame(frames.RESPONSE, request.request_id, payload)


def _error(request: frames.Request, status: int, code: str, message: str) -> bytes:
    from keel.endpoints.online.errors import error_document

    body = error_document(request.kind, status, code, message)
    return frames.frame(
        frames.RESPONSE, request.request_id, frames.response_payload(status, frames.JSON, body)
    )
