"""The registry on SQLite and PostgreSQL: versions, immutability, aliases, archive, references."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from keel.data.manifest import Manifest
from keel.errors import Conflict, InvalidInput, NotFound
from keel.models.aliases import aliases_of, delete_alias, set_alias
from keel.models.registry import (
    Request,
    get_model_version,
    list_models,
    register,
    register_local_model,
    resolve_model,
    set_archived,
    update_model_version,
)
from keel.workspace import Workspace


def test_a_folder_is_stored_by_content_with_a_manifest_of_hashes(registry: Workspace, folder: Path) -> None:
    version, created = register(registry, Request("scorer", str(folder), description="threshold model"))
    assert created and (version.name, version.version, version.type) == ("scorer", "1", "custom_model")
    assert version.path.startswith("azureml://datastores/workspaceblobstore/paths/cas/")
    assert version.path.endswith(version.digest.split(":")[1])
    manifest = Manifest.from_bytes(registry.artifacts.read_bytes(version.manifest_uri))
    assert manifest.digest == version.digest
    assert sorted(e.path for e in manifest.entries) == ["score.cfg", "weights/w.bin"]
    stored = registry.artifacts.local_path(version.path.split("/paths/", 1)[1])
    assert (stored / "weights" / "w.bin").read_bytes() == b"\x00\x01weights"
    assert (version.file_count, version.description, version.source) == (2, "threshold model", str(folder))
    (folder / "score.cfg").write_text("changed after registration\n")  # the registered copy is untouched
    assert (stored / "score.cfg").read_text() == "threshold=0.5\n"


def test_versions_are_numbered_per_name_and_immutable(
    registry: Workspace, folder: Path, tmp_path: Path
) -> None:
    first, _ = register(registry, Request("scorer", str(folder)))
    second, _ = register(registry, Request("scorer", str(folder)))
    assert (first.version, second.version) == ("1", "2")  # a new version each time, as in Azure ML
    other, _ = register(registry, Request("other", str(folder)))
    assert other.version == "1"
    same, created = register(registry, Request("scorer", str(folder), version="1"))
    assert not created and same == first
    (folder / "score.cfg").write_text("threshold=0.9\n")
    with pytest.raises(Conflict, match=r"scorer:1 already exists with a different content"):
        register(registry, Request("scorer", str(folder), version="1"))
    named, _ = register(registry, Request("scorer", str(folder), version="2024-06"))
    following, _ = register(registry, Request("scorer", str(folder)))
    assert (named.version, following.version) == ("2024-06", "3")


def test_an_identical_latest_version_can_be_reused(registry: Workspace, folder: Path) -> None:
    first, _ = register(registry, Request("scorer", str(folder), reuse_latest=True))
    again, created = register(registry, Request("scorer", str(folder), reuse_latest=True))
    assert not created and again.version == first.version
    (folder / "score.cfg").write_text("threshold=0.7\n")
    changed, created = register(registry, Request("scorer", str(folder), reuse_latest=True))
    assert created and changed.version == "2"


def test_concurrent_registrations_take_distinct_versions(registry: Workspace, folder: Path) -> None:
    found: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            found.append(register(registry, Request("busy", str(folder)))[0].version)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(found, key=int) == ["1", "2", "3", "4"]


def test_an_mlflow_folder_is_detected_and_its_flavors_and_signature_recorded(
    registry: Workspace, tmp_path: Path
) -> None:
    model = tmp_path / "mlmodel"
    model.mkdir()
    signature = {"inputs": json.dumps([{"name": "x", "type": "double"}]), "outputs": None}
    mlmodel = {"flavors": {"sklearn": {"pickled_model": "model.pkl"}}, "signature": signature}
    (model / "MLmodel").write_text(json.dumps(mlmodel))  # JSON is YAML
    (model / "model.pkl").write_bytes(b"not read at registration")
    version, _ = register(registry, Request("mlflowish", str(model)))
    assert (version.type, version.flavors) == ("mlflow_model", ["sklearn"])
    assert version.signature == {"inputs": [{"name": "x", "type": "double"}], "outputs": None, "params": None}
    custom, _ = register(registry, Request("as-custom", str(model), type="custom_model"))
    assert custom.type == "custom_model"


def test_bad_registrations_say_what_is_wrong(registry: Workspace, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no model file or folder at"):
        register(registry, Request("scorer", str(tmp_path / "missing")))
    with pytest.raises(InvalidInput, match="no MLmodel file"):
        register(registry, Request("scorer", str(folder), type="mlflow_model"))
    with pytest.raises(InvalidInput, match="unknown model type 'triton_model'"):
        register(registry, Request("scorer", str(folder), type="triton_model"))
    with pytest.raises(InvalidInput, match="model name 'bad name' is not valid"):
        register(registry, Request("bad name", str(folder)))
    with pytest.raises(InvalidInput, match="'latest' is a label"):
        register(registry, Request("scorer", str(folder), version="latest"))
    with pytest.raises(InvalidInput, match="is a reference, not a path"):
        register(registry, Request("scorer", "azureml:scorer:1"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  sklearn: [unclosed\n")
    with pytest.raises(InvalidInput, match=r"MLmodel:\d+: not valid YAML"):
        register(registry, Request("broken", str(broken)))
    assert list_models(registry) == []  # nothing half-recorded


def test_anonymous_local_models_register_once_by_content(registry: Workspace, folder: Path) -> None:
    first = register_local_model(registry, folder)
    again = register_local_model(registry, folder)
    assert first == again and first.name.startswith("anonymous-") and first.version == "1"
    named = register_local_model(registry, folder, name="scorer", model_type="custom_model")
    assert (named.name, named.version) == ("scorer", "1")
    with pytest.raises(NotFound):
        register_local_model(registry, folder / "nope")


def test_references_and_aliases_resolve_everywhere(registry: Workspace, folder: Path) -> None:
    for _ in range(3):
        register(registry, Request("scorer", str(folder)))
    set_alias(registry, "scorer", "champion", "2")
    for text in ("azureml:scorer@champion", "models:/scorer@champion", "scorer@champion", "scorer:2"):
        assert resolve_model(registry, text).version == "2", text
    for text in ("azureml:scorer@latest", "models:/scorer/latest", "scorer", "models:/scorer/3"):
        assert resolve_model(registry, text).version == "3", text
    set_alias(registry, "scorer", "champion", "3")  # moved
    assert resolve_model(registry, "models:/scorer@champion").version == "3"
    set_alias(registry, "scorer", "challenger", "1")
    assert aliases_of(registry, "scorer") == {"challenger": "1", "champion": "3"}
    delete_alias(registry, "scorer", "challenger")
    assert aliases_of(registry, "scorer") == {"champion": "3"}


def test_unknown_names_versions_and_aliases_are_named(registry: Workspace, folder: Path) -> None:
    register(registry, Request("scorer", str(folder)))
    with pytest.raises(NotFound, match="no model named 'nope'"):
        resolve_model(registry, "azureml:nope:1")
    with pytest.raises(NotFound, match="no version 9 of model scorer"):
        resolve_model(registry, "models:/scorer/9")
    with pytest.raises(NotFound, match="model scorer has no alias @gold"):
        resolve_model(registry, "scorer@gold")
    with pytest.raises(NotFound, match="no version 9 of model scorer"):
        set_alias(registry, "scorer", "gold", "9")
    with pytest.raises(NotFound, match="has no alias @gold"):
        delete_alias(registry, "scorer", "gold")
    with pytest.raises(InvalidInput, match="cannot be an alias"):
        set_alias(registry, "scorer", "latest", "1")


def test_archived_versions_leave_lists_and_latest_but_still_resolve(
    registry: Workspace, folder: Path
) -> None:
    register(registry, Request("scorer", str(folder)))
    register(registry, Request("scorer", str(folder)))
    assert set_archived(registry, "scorer", "2", archived=True) == 1
    assert resolve_model(registry, "scorer@latest").version == "1"
    assert resolve_model(registry, "scorer:2").archived
    assert [v.version for v in list_models(registry, "scorer")] == ["1"]
    assert [v.version for v in list_models(registry, "scorer", include_archived=True)] == ["2", "1"]
    assert set_archived(registry, "scorer", None, archived=True) == 2
    with pytest.raises(NotFound, match="has no active version"):
        resolve_model(registry, "scorer")
    assert list_models(registry) == []
    set_archived(registry, "scorer", None, archived=False)
    assert resolve_model(registry, "scorer").version == "2"
    with pytest.raises(NotFound):
        set_archived(registry, "scorer", "7", archived=True)


def test_description_and_tags_change_but_files_do_not(registry: Workspace, folder: Path) -> None:
    version, _ = register(registry, Request("scorer", str(folder), tags={"team": "delays", "old": "x"}))
    changed = update_model_version(
        registry, "scorer", "1", description="better", set_tags={"stage": "prod"}, remove_tags=["old"]
    )
    assert changed.description == "better"
    assert changed.tags == {"team": "delays", "stage": "prod"}
    assert (changed.digest, changed.path) == (version.digest, version.path)
    assert get_model_version(registry, "scorer", "1").updated_at >= version.updated_at
    with pytest.raises(NotFound):
        update_model_version(registry, "scorer", "5", description="x")
