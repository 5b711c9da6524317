"""Searching jobs on both databases: filters, orderings over summaries, paging, views."""

from __future__ import annotations

import pytest

from keel.errors import InvalidInput
from keel.store import Store
from keel.tracking import jobs as job_ops
from keel.tracking.entities import JobStatus, LifecycleStage
from keel.tracking.experiments import get_or_create_experiment
from keel.tracking.metrics import write_metrics
from keel.tracking.search import search_jobs


@pytest.fixture
def population(store: Store) -> dict[str, str]:
    """Six jobs in two experiments with params, tags, and loss curves of known min/last."""
    names: dict[str, str] = {}
    flights = get_or_create_experiment(store, "flights")
    other = get_or_create_experiment(store, "other")
    specs = [
        ("rf1", flights, "rf", [0.9, 0.3, 0.5], JobStatus.COMPLETED),
        ("rf2", flights, "rf", [0.8, 0.6, 0.4], JobStatus.COMPLETED),
        ("lr1", flights, "lr", [0.7, 0.2, 0.9], JobStatus.FAILED),
        ("gb1", flights, "gb", [0.5, 0.45, 0.1], JobStatus.COMPLETED),
        ("gb2", other, "gb", [0.05], JobStatus.RUNNING),
        ("bare", flights, None, [], JobStatus.COMPLETED),
    ]
    for index, (name, experiment, model, losses, status) in enumerate(specs):
        job = job_ops.create_job(
            store, experiment, name=name, start_time=1_000 + index, tags={"team": f"t{index % 2}"}
        )
        if model:
            job_ops.log_params(store, job.id, {"model": model, "seed": index})
        write_metrics(store, [(job.id, "loss", v, 1, step) for step, v in enumerate(losses)])
        if status.is_terminal:
            job_ops.set_job_status(store, name, status)
        names[name] = name
    return names


def _names(store: Store, **kwargs: object) -> list[str]:
    return [job.name for job in search_jobs(store, **kwargs).jobs]  # type: ignore[arg-type]


def test_newest_first_by_default(store: Store, population: dict[str, str]) -> None:
    assert _names(store) == ["bare", "gb2", "gb1", "lr1", "rf2", "rf1"]


def test_filter_on_param_ordered_by_minimum(store: Store, population: dict[str, str]) -> None:
    found = _names(store, filter="params.model = 'rf'", order_by="min(metrics.loss) ASC")
    assert found == ["rf1", "rf2"]


def test_order_by_last_value_puts_missing_metrics_last(store: Store, population: dict[str, str]) -> None:
    assert _names(store, order_by=["metrics.loss DESC"]) == [
        "lr1",
        "rf1",
        "rf2",
        "gb1",
        "gb2",
        "bare",
    ]
    assert _names(store, order_by=["metrics.loss ASC"]) == [
        "gb2",
        "gb1",
        "rf2",
        "rf1",
        "lr1",
        "bare",
    ]


def test_summary_comparisons(store: Store, population: dict[str, str]) -> None:
    assert set(_names(store, filter="min(metrics.loss) < 0.25")) == {"lr1", "gb1", "gb2"}
    assert set(_names(store, filter="max(metrics.loss) >= 0.9")) == {"rf1", "lr1"}
    assert set(_names(store, filter="metrics.loss <= 0.1")) == {"gb1", "gb2"}
    assert set(_names(store, filter="count(metrics.loss) = 1")) == {"gb2"}


def test_status_accepts_mlflow_and_keel_spellings(store: Store, population: dict[str, str]) -> None:
    assert _names(store, filter="attributes.status = 'FAILED'") == ["lr1"]
    assert _names(store, filter="status = 'running'") == ["gb2"]
    assert set(_names(store, filter="status IN ('KILLED', 'RUNNING')")) == {"gb2"}
    with pytest.raises(InvalidInput, match="unknown status 'DONE'"):
        search_jobs(store, filter="status = 'DONE'")


def test_or_like_in_and_null(store: Store, population: dict[str, str]) -> None:
    assert set(_names(store, filter="params.model = 'lr' or params.model = 'gb'")) == {
        "lr1",
        "gb1",
        "gb2",
    }
    assert set(_names(store, filter="params.model IN ('rf', 'lr')")) == {"rf1", "rf2", "lr1"}
    assert _names(store, filter="params.model IS NULL") == ["bare"]
    assert set(_names(store, filter="tags.team LIKE 't1'")) == {"rf2", "gb1", "bare"}
    assert _names(store, filter="params.model LIKE 'R%'") == []
    assert set(_names(store, filter="params.model ILIKE 'R%'")) == {"rf1", "rf2"}
    assert _names(store, filter="params.seed = 2") == ["lr1"]


def test_experiment_scope_and_views(store: Store, population: dict[str, str]) -> None:
    other = get_or_create_experiment(store, "other")
    assert _names(store, experiment_ids=[other.id]) == ["gb2"]
    job_ops.set_job_lifecycle(store, "rf1", LifecycleStage.DELETED)
    assert "rf1" not in _names(store)
    assert _names(store, view="deleted") == ["rf1"]
    assert len(_names(store, view="all")) == 6


def test_paging_walks_every_job_once(store: Store, population: dict[str, str]) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = search_jobs(store, max_results=4, page_token=token, order_by="attributes.run_id")
        seen += [job.name for job in page.jobs]
        token = page.next_page_token
        if token is None:
            break
    assert seen == sorted(population)
    with pytest.raises(InvalidInput, match="page token"):
        search_jobs(store, page_token="garbage")


def test_search_results_carry_params_tags_and_metrics(store: Store, population: dict[str, str]) -> None:
    (job,) = search_jobs(store, filter="attributes.run_id = 'gb1'").jobs
    assert job.params == {"model": "gb", "seed": "3"}
    assert job.tags == {"team": "t1"}
    assert job.metrics["loss"].min == 0.1


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ("metrics.loss = 'low'", "is a number"),
        ("params.model > 'a'", "holds text"),
        ("attributes.colour = 'red'", "unknown attribute 'colour'"),
        ("start_time > 'yesterday'", "is a number"),
    ],
)
def test_type_errors_in_filters_are_explained(store: Store, filter: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        search_jobs(store, filter=filter)


def test_bounds_on_max_results(store: Store) -> None:
    with pytest.raises(InvalidInput, match="max_results"):
        search_jobs(store, max_results=0)
