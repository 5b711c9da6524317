"""The background writer: batches, flush semantics, backpressure and failure reporting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from keel.errors import Unavailable
from keel.store import Store, open_store
from keel.tracking import jobs as job_ops
from keel.tracking.experiments import get_or_create_experiment
from keel.tracking.metrics import get_metric_history
from keel.tracking.writer import MetricWriter


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'keel.db'}")


def test_flush_waits_for_everything_queued_before_it(sqlite_store: Store) -> None:
    job = job_ops.create_job(sqlite_store, get_or_create_experiment(sqlite_store, "w"))
    writer = MetricWriter(sqlite_store, flush_interval=5.0, batch_size=1000)
    for step in range(2500):
        writer.put((job.id, "k", float(step), step, step))
    writer.flush()
    assert len(get_metric_history(sqlite_store, job.id, "k")) == 2500
    writer.close()


def test_producers_from_several_threads_lose_nothing(sqlite_store: Store) -> None:
    job = job_ops.create_job(sqlite_store, get_or_create_experiment(sqlite_store, "w"))
    writer = MetricWriter(sqlite_store, batch_size=500, max_pending=2000)

    def produce(key: str) -> None:
        for step in range(3000):
            writer.put((job.id, key, 1.0, step, step))

    threads = [threading.Thread(target=produce, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    summaries = job_ops.get_job(sqlite_store, job.name).metrics
    assert {key: s.count for key, s in summaries.items()} == {f"t{i}": 3000 for i in range(4)}
    writer.close()


def test_a_write_that_keeps_failing_is_reported_at_flush(sqlite_store: Store) -> None:
    """A point for a job that does not exist violates the foreign key: it cannot be written."""
    writer = MetricWriter(sqlite_store, flush_interval=0.01)
    writer.put((424242, "k", 1.0, 1, 0))
    with pytest.raises(Unavailable, match="1 metric points could not be written"):
        writer.flush()
    writer.close()


def test_close_writes_what_is_left(sqlite_store: Store) -> None:
    job = job_ops.create_job(sqlite_store, get_or_create_experiment(sqlite_store, "w"))
    writer = MetricWriter(sqlite_store, flush_interval=60.0)
    writer.put((job.id, "k", 1.0, 1, 0))
    writer.close()
    assert len(get_metric_history(sqlite_store, job.id, "k")) == 1
