"""Experiments on both databases: create, find, rename, delete and restore, tags."""

from __future__ import annotations

import pytest

from keel.errors import Conflict, InvalidInput, NotFound
from keel.store import Store
from keel.tracking import experiments as ops
from keel.tracking.entities import LifecycleStage


def test_default_experiment_exists_with_id_zero(store: Store) -> None:
    default = ops.get_experiment(store, 0)
    assert (default.id, default.name) == (0, "Default")
    assert ops.get_experiment_by_name(store, "Default").id == 0


def test_create_and_find_by_id_and_name(store: Store) -> None:
    created = ops.create_experiment(store, "flights", tags={"team": "ml", "n": 3})
    assert created.id >= 1
    assert created.tags == {"team": "ml", "n": "3"}
    assert ops.get_experiment(store, str(created.id)).name == "flights"
    assert ops.get_experiment_by_name(store, "flights").id == created.id


def test_names_are_unique(store: Store) -> None:
    ops.create_experiment(store, "flights")
    with pytest.raises(Conflict, match="already exists"):
        ops.create_experiment(store, "flights")


def test_get_or_create_is_stable(store: Store) -> None:
    first = ops.get_or_create_experiment(store, "x")
    assert ops.get_or_create_experiment(store, "x").id == first.id
    assert ops.get_or_create_experiment(store, None).id == 0


def test_unknown_experiments_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no experiment named 'nope'"):
        ops.get_experiment_by_name(store, "nope")
    with pytest.raises(NotFound):
        ops.get_experiment(store, 4242)
    with pytest.raises(InvalidInput, match="whole number"):
        ops.get_experiment(store, "abc")


def test_rename_delete_restore(store: Store) -> None:
    created = ops.create_experiment(store, "old")
    ops.rename_experiment(store, created.id, "new")
    assert ops.get_experiment(store, created.id).name == "new"
    ops.set_experiment_lifecycle(store, created.id, LifecycleStage.DELETED)
    assert [e.name for e in ops.list_experiments(store)] == ["Default"]
    assert [e.name for e in ops.list_experiments(store, view="deleted")] == ["new"]
    ops.set_experiment_lifecycle(store, created.id, LifecycleStage.ACTIVE)
    assert {e.name for e in ops.list_experiments(store)} == {"Default", "new"}
    with pytest.raises(InvalidInput, match="Default experiment cannot be deleted"):
        ops.set_experiment_lifecycle(store, 0, LifecycleStage.DELETED)


def test_tags_can_be_overwritten_and_deleted(store: Store) -> None:
    created = ops.create_experiment(store, "tagged", tags={"a": "1"})
    ops.set_experiment_tags(store, created.id, {"a": "2", "b": "3"})
    assert ops.get_experiment(store, created.id).tags == {"a": "2", "b": "3"}
    ops.delete_experiment_tag(store, created.id, "a")
    assert ops.get_experiment(store, created.id).tags == {"b": "3"}
    with pytest.raises(NotFound):
        ops.delete_experiment_tag(store, created.id, "a")


def test_bad_names_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput):
        ops.create_experiment(store, "   ")
    with pytest.raises(InvalidInput):
        ops.create_experiment(store, "x" * 300)
