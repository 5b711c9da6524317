"""Production data collection: sampled inputs and outputs, written as hourly Parquet partitions.

A request is sampled (``sampling_rate``) on the request path — one random draw —
and its rows are appended to an in-memory buffer; a background thread writes the
buffer every few seconds, so the request never waits on storage. Files land
under the collection's datastore path as ``YYYY/MM/DD/HH/<worker>-<n>.parquet``
(Azure ML's hourly layout), written to a hidden temporary name and renamed, so a
reader never sees half a file. Each row carries the request's correlation id (the
``x-request-id`` the client sent or the gateway made), which joins inputs to
outputs. The collection is registered once as a data asset
(``<endpoint>-<deployment>-<collection>`` unless the spec names one), so
``keel.data.load("azureml:<name>:1")`` reads everything collected so far.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keel.workspace import Workspace

FLUSH_SECONDS = 2.0
MAX_BUFFERED_ROWS = 100_000
_PARTITION = {"minute": "%Y/%m/%d/%H/%M", "hour": "%Y/%m/%d/%H", "day": "%Y/%m/%d"}


@dataclass
class _Collection:
    name: str
    data_name: str
    data_path: str
    data_version: str
    sampling_rate: float
    records: list[dict[str, Any]] = field(default_factory=list)
    registered: bool = False


class Collector:
    """The collections of one worker; :meth:`close` writes what is buffered."""

    def __init__(self, workspace: Workspace, settings: dict[str, Any], worker: str) -> None:
        self._workspace = workspace
        self._worker = worker
        self._pattern = _PARTITION.get(settings.get("rolling_rate", "hour"), _PARTITION["hour"])
        self._collections = {
            name: _Collection(
                name,
                item["data_name"],
                item["data_path"],
                item["data_version"],
                float(item["sampling_rate"]),
            )
            for name, item in settings["collections"].items()
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._files = 0
        self._thread = threading.Thread(target=self._loop, name="keel-collector", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        """One draw per request: inputs and outputs of a request are kept together or not at all."""
        rate = max(c.sampling_rate for c in self._collections.values())
        return rate >= 1.0 or random.random() < rate

    def add(self, collection: str, correlation_id: str, records: list[dict[str, Any]]) -> None:
        """Queue rows for writing; cheap, never touches storage."""
        found = self._collections.get(collection)
        if found is None or not records:
            return
        stamp = time.time_ns() // 1_000_000
        for record in records:
            record["correlation_id"] = correlation_id
            record["timestamp_ms"] = stamp
        with self._lock:
            if len(found.records) < MAX_BUFFERED_ROWS:
                found.records.extend(records)

    def wants(self, collection: str) -> bool:
        return collection in self._collections

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        for collection in self._collections.values():
            with self._lock:
                records, collection.records = collection.records, []
            if records:
                try:
                    self._write(collection, records)
                except Exception as exc:  # collection must never take the deployment down
                    sys.stderr.write(
                        f"data collection {collection.name}: could not write {len(records)} rows: {exc}\n"
                    )

    def _write(self, collection: _Collection, records: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from keel.data.locations import resolve_location

        table = _table(pa, records)
        partition = datetime.now(UTC).strftime(self._pattern)
        self._files += 1
        name = f"{self._worker}-{uuid.uuid4().hex[:8]}-{self._files}.parquet"
        location = resolve_location(self._workspace, collection.data_path).child(f"{partition}/{name}")
        folder = location.path.rsplit("/", 1)[0]
        temporary = f"{folder}/.{name}.tmp"
        fs = location.fs
        fs.makedirs(folder, exist_ok=True)
        with fs.open(temporary, "wb") as handle:
            pq.write_table(table, handle)
        fs.mv(temporary, location.path)
        if not collection.registered:
            self._register(collection)

    def _register(self, collection: _Collection) -> None:
        from keel.data.assets import Request, get_asset, register
        from keel.errors import Conflict, NotFound

        try:
            get_asset(self._workspace, collection.data_name, collection.data_version)
        except NotFound:
            request = Request(
                name=collection.data_name,
                path=collection.data_path,
                type="uri_folder",
                version=collection.data_version,
                description=f"data collected by the online deployment's {collection.name} collection",
            )
            with contextlib.suppress(Conflict):  # another worker registered it first
                register(self._workspace, request)
        collection.registered = True


def _table(pa: Any, records: list[dict[str, Any]]) -> Any:
    """A table from the records; values pyarrow cannot type consistently are kept as JSON text."""
    columns: dict[str, list[Any]] = {}
    for number, record in enumerate(records):
        for key in record:
            if key not in columns:
                columns[key] = [None] * number
        for key, values in columns.items():
            values.append(record.get(key))
    arrays = {}
    for key, values in columns.items():
        try:
            arrays[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            from keel.endpoints.online.tables import json_bytes

            arrays[key] = pa.array([None if v is None else json_bytes(v).decode() for v in values])
    return pa.table(arrays)
