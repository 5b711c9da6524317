"""Metric points and summaries on both databases: exact summaries, NaN, history, downsampling."""

from __future__ import annotations

import math

import pytest

from keel.errors import InvalidInput
from keel.store import Store
from keel.tracking import jobs as job_ops
from keel.tracking.entities import Job
from keel.tracking.experiments import get_or_create_experiment
from keel.tracking.metrics import PendingPoint, get_metric_history, write_metrics


@pytest.fixture
def job(store: Store) -> Job:
    return job_ops.create_job(store, get_or_create_experiment(store, "m"))


def _points(job: Job, key: str, values: list[float], start_step: int = 0) -> list[PendingPoint]:
    return [(job.id, key, v, 1000 + i, start_step + i) for i, v in enumerate(values)]


def test_summaries_are_exact_across_batches(store: Store, job: Job) -> None:
    write_metrics(store, _points(job, "loss", [0.9, 0.5, 0.7]))
    write_metrics(store, _points(job, "loss", [0.2, 0.4], start_step=3))
    summary = job_ops.get_job(store, job.name).metrics["loss"]
    assert (summary.count, summary.last, summary.last_step) == (5, 0.4, 4)
    assert (summary.min, summary.min_step, summary.max, summary.max_step) == (0.2, 3, 0.9, 0)
    assert summary.first_step == 0


def test_last_means_greatest_step_even_when_it_arrives_first(store: Store, job: Job) -> None:
    write_metrics(store, [(job.id, "acc", 0.9, 5000, 10)])
    write_metrics(store, [(job.id, "acc", 0.1, 9000, 2)])
    summary = job_ops.get_job(store, job.name).metrics["acc"]
    assert (summary.last, summary.last_step, summary.count) == (0.9, 10, 2)


def test_nan_and_infinities_are_stored_faithfully(store: Store, job: Job) -> None:
    write_metrics(store, _points(job, "odd", [math.nan, math.inf, -math.inf, 1.5]))
    history = get_metric_history(store, job.id, "odd")
    assert math.isnan(history[0].value)
    assert [p.value for p in history[1:]] == [math.inf, -math.inf, 1.5]
    summary = job_ops.get_job(store, job.name).metrics["odd"]
    assert (summary.min, summary.max, summary.count) == (-math.inf, math.inf, 4)


def test_an_all_nan_metric_has_nan_summaries(store: Store, job: Job) -> None:
    write_metrics(store, _points(job, "void", [math.nan, math.nan]))
    summary = job_ops.get_job(store, job.name).metrics["void"]
    assert math.isnan(summary.last) and math.isnan(summary.min) and math.isnan(summary.max)


def test_history_is_in_step_order(store: Store, job: Job) -> None:
    write_metrics(store, [(job.id, "k", 3.0, 3, 3), (job.id, "k", 1.0, 1, 1), (job.id, "k", 2.0, 2, 2)])
    assert [p.step for p in get_metric_history(store, job.id, "k")] == [1, 2, 3]
    assert get_metric_history(store, job.id, "unknown") == []


def test_downsampling_keeps_ends_and_extremes(store: Store, job: Job) -> None:
    values = [math.sin(i / 50) for i in range(5000)]
    values[1234] = 99.0
    values[4321] = -99.0
    write_metrics(store, _points(job, "wave", values))
    sampled = get_metric_history(store, job.id, "wave", max_points=100)
    steps = [p.step for p in sampled]
    assert 50 <= len(sampled) <= 100
    assert steps == sorted(steps)
    assert {0, 4999, 1234, 4321} <= set(steps)
    assert all(p.value == values[p.step] for p in sampled)


def test_downsampling_a_short_history_returns_all_of_it(store: Store, job: Job) -> None:
    write_metrics(store, _points(job, "short", [1.0, 2.0, 3.0]))
    assert len(get_metric_history(store, job.id, "short", max_points=1000)) == 3
    with pytest.raises(InvalidInput):
        get_metric_history(store, job.id, "short", max_points=0)


def test_metric_key_ids_are_shared_across_jobs(store: Store, job: Job) -> None:
    other = job_ops.create_job(store, get_or_create_experiment(store, "m"))
    write_metrics(store, [(job.id, "shared", 1.0, 1, 0), (other.id, "shared", 2.0, 1, 0)])
    assert job_ops.get_job(store, other.name).metrics["shared"].last == 2.0


def test_points_for_a_job_that_does_not_exist_are_refused(store: Store) -> None:
    """Both insert paths (multi-row INSERT, COPY) surface the foreign-key violation."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        write_metrics(store, [(987654, "k", 1.0, 1, 0)])
