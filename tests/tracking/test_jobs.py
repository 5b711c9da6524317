"""Jobs on both databases: records, status, params, tags, inputs and dead-process reaping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from sqlalchemy import update

from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.store.schema import jobs
from keel.tracking import jobs as ops
from keel.tracking.entities import Experiment, JobInput, JobStatus, LifecycleStage
from keel.tracking.experiments import get_or_create_experiment


@pytest.fixture
def experiment(store: Store) -> Experiment:
    return get_or_create_experiment(store, "exp")


def test_a_job_gets_a_readable_unique_name_and_an_artifact_location(
    store: Store, experiment: Experiment
) -> None:
    job = ops.create_job(store, experiment, display_name="first try")
    assert job.name.count("_") == 2
    assert job.status == JobStatus.RUNNING
    assert job.display_name == "first try"
    assert job.artifact_location == f"{experiment.id}/{job.name}/artifacts"
    assert ops.get_job(store, job.name).id == job.id


def test_explicit_names_must_be_unique_and_valid(store: Store, experiment: Experiment) -> None:
    ops.create_job(store, experiment, name="baseline")
    with pytest.raises(Conflict, match="baseline"):
        ops.create_job(store, experiment, name="baseline")
    with pytest.raises(InvalidInput):
        ops.create_job(store, experiment, name="has space")


def test_status_changes_stamp_end_time(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment, heartbeat=True)
    ops.set_job_status(store, job.name, JobStatus.FAILED, reason="boom")
    ended = ops.get_job(store, job.name)
    assert ended.status == JobStatus.FAILED
    assert ended.status_reason == "boom"
    assert ended.end_time is not None and ended.heartbeat_at is None


def test_params_are_immutable_but_idempotent(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment)
    ops.log_params(store, job.id, {"lr": 0.1, "model": "rf"})
    ops.log_params(store, job.id, {"lr": "0.1"})
    with pytest.raises(InvalidInput, match="cannot change"):
        ops.log_params(store, job.id, {"lr": 0.2})
    assert ops.get_job(store, job.name).params == {"lr": "0.1", "model": "rf"}


def test_over_long_params_and_bad_keys_are_refused(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment)
    with pytest.raises(InvalidInput, match="6001 characters; at most 6000"):
        ops.log_params(store, job.id, {"long": "x" * 6001})
    with pytest.raises(InvalidInput, match="not allowed"):
        ops.log_params(store, job.id, {"bad\nkey": 1})
    with pytest.raises(InvalidInput, match="at most 250"):
        ops.log_params(store, job.id, {"k" * 251: 1})
    assert ops.get_job(store, job.name).params == {}


def test_tags_overwrite_and_delete(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment, tags={"a": "1"})
    ops.set_tags(store, job.id, {"a": "2", "b": 3})
    assert ops.get_job(store, job.name).tags == {"a": "2", "b": "3"}
    ops.delete_tag(store, job.id, "a")
    with pytest.raises(NotFound):
        ops.delete_tag(store, job.id, "a")


def test_inputs_are_kept_once_per_digest(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment)
    data = JobInput(name="flights", type="dataset", digest="abc", tags={"mlflow.data.context": "train"})
    ops.log_inputs(store, job.id, [data, data])
    found = ops.get_job(store, job.name).inputs
    assert found == [data]


def test_children_know_their_parent(store: Store, experiment: Experiment) -> None:
    parent = ops.create_job(store, experiment)
    child = ops.create_job(store, experiment, parent_id=parent.id)
    assert child.parent_name == parent.name


def test_soft_delete_and_restore(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment)
    ops.set_job_lifecycle(store, job.name, LifecycleStage.DELETED)
    assert ops.get_job(store, job.name).lifecycle_stage == LifecycleStage.DELETED


def test_unknown_jobs_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no job named 'ghost'"):
        ops.get_job(store, "ghost")


def test_a_job_whose_heartbeat_stopped_is_failed_after_the_timeout(
    store: Store, experiment: Experiment
) -> None:
    job = ops.create_job(store, experiment, heartbeat=True)
    with store.write() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(hostname="elsewhere"))
    assert ops.reap_dead_jobs(store, timeout_seconds=60) == []
    later = job.heartbeat_at + 61_000
    assert ops.reap_dead_jobs(store, timeout_seconds=60, now=later) == [job.name]
    reaped = ops.get_job(store, job.name)
    assert reaped.status == JobStatus.FAILED
    assert "stopped without ending it" in (reaped.status_reason or "")


def test_a_job_whose_local_process_is_gone_is_failed_quickly(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment, heartbeat=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with store.write() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(process_id=child.pid, hostname=socket.gethostname())
        )
    assert ops.reap_dead_jobs(store, timeout_seconds=3600, now=job.heartbeat_at) == []  # grace
    assert ops.reap_dead_jobs(store, timeout_seconds=3600, now=job.heartbeat_at + 5_000) == [job.name]


def test_a_live_local_process_keeps_its_job(store: Store, experiment: Experiment) -> None:
    job = ops.create_job(store, experiment, heartbeat=True)
    assert job.heartbeat_at is not None
    assert ops.reap_dead_jobs(store, timeout_seconds=3600, now=job.heartbeat_at + 5_000) == []
    assert ops.process_alive(os.getpid())
