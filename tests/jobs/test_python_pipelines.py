"""Python pipelines: steps and bindings built from calls, nesting, the mistakes users
make, and the YAML round trip (a Python pipeline and ``keel job export`` of it load
back as the same job; so does YAML written by hand).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from keel.jobs.python_call import call_function, function_target
from keel.jobs.python_component import FunctionError, Input
from keel.jobs.python_pipeline import pipeline
from keel.specs import Binding, DataRef, load_job
from keel.specs.export import export_yaml
from keel.specs.models import InputDecl, OutputDecl
from tests.jobs.python_shop import ORDERS, PROJECT, comparable, components, pipelines

# -- pipelines --------------------------------------------------------------------------


def test_a_pipeline_call_is_a_resolved_pipeline_job() -> None:
    job = pipelines.orders(raw=str(ORDERS))
    assert (job.kind, job.name, job.display_name) == ("pipeline", None, "orders")  # a new name per run
    assert (job.root.name, job.root.component.name) == ("orders", "orders")
    assert (job.experiment_name, job.tags) == ("shop", {"team": "data"})
    assert job.description == "Prepare the orders, then score them."
    assert job.settings.max_concurrency == 2
    root = job.root
    assert root.inputs == {
        "raw": Binding(kind="data", data=DataRef(type="uri_file", path=str(ORDERS))),
        "min_amount": Binding(kind="literal", value=10.0),
    }
    assert root.component.outputs == {
        "clean": OutputDecl(type="uri_folder"),
        "total": OutputDecl(type="number"),
    }
    steps = root.component.steps or {}
    assert list(steps) == ["prep", "scoring"]
    assert steps["prep"].inputs == {
        "raw": Binding(kind="parent_input", name="raw"),
        "min_amount": Binding(kind="parent_input", name="min_amount"),
    }
    assert steps["scoring"].inputs == {
        "data": Binding(kind="step_output", step="prep", name="clean"),
        "threshold": Binding(kind="literal", value=50.0),
    }
    assert steps["prep"].outputs["clean"].parent_output == "clean"
    assert steps["scoring"].outputs["total"].parent_output == "total"
    assert steps["scoring"].component.model_copy(update={"source": ""}) == (
        components.score.component.model_copy(update={"source": ""})
    )


def test_optional_inputs_bind_only_when_given_and_paths_are_relative_to_the_working_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROJECT)
    job = pipelines.orders(raw="data/orders.csv", label="weekly", min_amount=5)
    assert job.root.inputs["raw"].data == DataRef(type="uri_file", path=str(ORDERS))
    assert job.root.inputs["min_amount"] == Binding(kind="literal", value=5.0)
    scoring = (job.root.component.steps or {})["scoring"]
    assert scoring.inputs["label"] == Binding(kind="parent_input", name="label")
    azure_style = pipelines.orders(raw=Input(type="uri_file", path="data/orders.csv", mode="download"))
    assert azure_style.root.inputs["raw"].data == DataRef(type="uri_file", path=str(ORDERS), mode="download")


def test_nested_pipelines_and_unique_step_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)
    job = pipelines.two_cuts()  # its data input defaults to data/orders.csv
    assert job.root.inputs["raw"].data == DataRef(type="uri_file", path=str(ORDERS))
    assert job.settings.continue_on_step_failure is True
    steps = job.root.component.steps or {}
    assert list(steps) == ["prep", "prep_1", "scoring", "count"]
    assert steps["prep_1"].inputs["min_amount"] == Binding(kind="literal", value=100)
    assert steps["count"].inputs == {"items": Binding(kind="step_output", step="prep", name="output")}
    nested = steps["scoring"]
    assert (nested.kind, nested.component.kind) == ("pipeline", "pipeline")
    assert nested.inputs == {
        "data": Binding(kind="step_output", step="prep_1", name="clean"),
        "threshold": Binding(kind="literal", value=100.0),
    }
    assert nested.outputs["passed"].parent_output == "passed"
    assert nested.component.inputs == {
        "data": InputDecl(type="uri_folder"),
        "threshold": InputDecl(type="number", default=0.5),
    }
    inner = nested.component.steps or {}
    assert list(inner) == ["score_orders", "report"]
    assert inner["score_orders"].inputs["data"] == Binding(kind="parent_input", name="data")
    assert inner["score_orders"].outputs["passed"].parent_output == "passed"
    assert inner["report"].inputs["style"] == Binding(kind="literal", value="long")


def test_steps_can_be_named_and_a_single_output_step_passed_whole() -> None:
    @pipeline
    def twice() -> dict[str, Any]:
        first = components.count(items=2).named("first")
        second = components.count(items=3, scale=first)
        return {"result": second}

    steps = twice().root.component.steps or {}
    assert list(steps) == ["first", "count"]
    assert steps["count"].inputs["scale"] == Binding(kind="step_output", step="first", name="output")
    assert steps["count"].outputs["output"].parent_output == "result"


def test_steps_take_the_settings_a_yaml_step_takes() -> None:
    @pipeline
    def careful() -> None:
        components.count(items=1).configure(
            display_name="Count once", compute="azureml:cpu", timeout=30, retries=2, retry_delay=0.5
        )

    step = (careful().root.component.steps or {})["count"]
    assert (step.display_name, step.compute, step.timeout) == ("Count once", "azureml:cpu", 30)
    assert (step.retry.count, step.retry.delay) == (2, 0.5)


def test_a_chain_of_fifty_steps() -> None:
    job = pipelines.chain(50)()
    steps = job.root.component.steps or {}
    assert list(steps) == ["count", *(f"count_{n}" for n in range(1, 50))]
    assert steps["count_49"].inputs["scale"] == Binding(kind="step_output", step="count_48", name="output")
    # The runner's fast path, by hand: each step called in-process with its upstream's output.
    value: object = None
    for step in steps.values():
        target = function_target(step.component)
        assert target == "shop.components:count"
        value = call_function(target, {"items": 1, "scale": value})["output"]
    assert value == 1.0


def builds(function: Any) -> Any:
    return pipeline(function)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            lambda: components.count(items=1, size=2),
            "count(size=…): count has no input 'size' (items, scale)",
        ),
        (
            lambda: components.prep(raw=str(ORDERS), clean="here"),
            "'clean' is an output; take it from the step",
        ),
        (lambda: components.count(1), "component count: inside a pipeline, pass inputs by name"),
        (lambda: components.count(items="many"), "jobs.count.inputs.items: expected an integer, got 'many'"),
        (lambda: components.count(items=[1]), "count(items=…): expected a integer, got list"),
        (lambda: {"x": 3}, "returned output 'x': return a step's output"),
        (lambda: 3, "must return None or a dict of step outputs, got int"),
        (lambda: None, "a pipeline needs at least one step under 'jobs'"),
        (
            lambda: (components.count(items=1).named("a"), components.count(items=2).named("a")),
            "two steps are named 'a'",
        ),
        (lambda: components.count(items=1).named("1st"), "'1st' is not a valid step name"),
        (lambda: components.count(items=1).outputs.nope, "count has no output 'nope' (output)"),
        (
            lambda: components.count(items=components.prep(raw=str(ORDERS)).outputs.clean),
            "count(items=…): <prep.outputs.clean> is a uri_folder output; the input is integer",
        ),
        (lambda: components.prep(raw="no/such/orders.csv"), "no such file or folder"),
    ],
)
def test_mistakes_in_a_pipeline_are_named(body: Any, problem: str) -> None:
    def broken() -> Any:
        returned = body()
        return returned if isinstance(returned, dict | int) else None

    with pytest.raises((FunctionError, AttributeError)) as caught:
        pipeline(broken)()
    assert problem in str(caught.value)


def test_a_parameter_is_a_placeholder_while_the_pipeline_is_built() -> None:
    @pipeline
    def branching(threshold: float = 1.0) -> None:
        if threshold:
            components.count(items=1)

    @pipeline
    def formatting(label: str = "x") -> None:
        components.prep(raw=f"{label}.csv")

    with pytest.raises(FunctionError, match="'threshold' has no value while the pipeline is built"):
        branching()
    with pytest.raises(FunctionError, match="'label' has no value while the pipeline is built"):
        formatting()


def test_pipeline_arguments_are_checked() -> None:
    with pytest.raises(FunctionError, match="pipeline orders: missing a required argument: 'raw'"):
        pipelines.orders()
    with pytest.raises(FunctionError, match="input 'min_amount': expected a number, got 'lots'"):
        pipelines.orders(raw=str(ORDERS), min_amount="lots")
    with pytest.raises(FunctionError, match="no such file or folder"):
        pipelines.orders(raw=str(ORDERS.with_name("missing.csv")))


# -- the YAML round trip ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: pipelines.orders(raw=str(ORDERS), label="weekly"),
        lambda: pipelines.two_cuts(raw=str(ORDERS)),
        pipelines.chain(3),
    ],
)
def test_export_writes_yaml_that_loads_back_as_the_same_job(tmp_path: Path, make: Any) -> None:
    job = make()
    text = export_yaml(job, relative_to=tmp_path)
    path = tmp_path / f"{job.root.name}.yml"  # an unnamed job's root is named after its file
    path.write_text(text)
    loaded = load_job(path)
    assert comparable(loaded) == comparable(job)
    assert loaded.notices == job.notices
    assert f"code: {os.path.relpath(PROJECT, tmp_path)}\n" in text


YAML_PROJECT = {
    "src/train.py": "print('train')\n",
    "data/rows.csv": "a\n1\n",
    "train.yml": """
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: train
version: 3
inputs:
  data: {type: uri_folder}
  lr: {type: number, default: 0.1, min: 0, max: 1}
  seed: {type: integer, optional: true}
outputs:
  model: {type: mlflow_model}
code: ./src
environment: azureml:sklearn:1
command: >-
  python train.py --data ${{inputs.data}} --lr ${{inputs.lr}}
  $[[--seed ${{inputs.seed}}]] --model ${{outputs.model}}
""",
    "inner.yml": """
type: pipeline
name: inner
inputs:
  data: {type: uri_folder}
outputs:
  model: {type: mlflow_model}
jobs:
  fit:
    type: command
    component: ./train.yml
    inputs: {data: "${{parent.inputs.data}}", seed: 7}
    outputs: {model: "${{parent.outputs.model}}"}
""",
    "pipeline.yml": """
type: pipeline
display_name: round trip
experiment_name: exported
settings: {default_compute: azureml:cpu, continue_on_step_failure: true}
inputs:
  data: {type: uri_folder, path: ./data, mode: ro_mount}
  lr: {type: number, value: 1}
  epochs: 3
  name: nightly
outputs:
  model: {type: mlflow_model}
jobs:
  prep:
    type: command
    command: python train.py --data ${{inputs.data}} --epochs ${{inputs.epochs}} --out ${{outputs.clean}}
    code: ./src
    environment: {image: "python:3.11", conda_file: {dependencies: [pip]}}
    environment_variables: {MODE: fast}
    inputs:
      data: ${{parent.inputs.data}}
      epochs: ${{parent.inputs.epochs}}
    outputs:
      clean: {type: uri_folder, mode: upload}
    limits: {timeout: 60}
    retry: {count: 2, delay: 1}
    is_deterministic: false
  train:
    type: command
    component: ./train.yml
    compute: azureml:gpu
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
      lr: ${{parent.inputs.lr}}
    outputs:
      model: ${{parent.outputs.model}}
  tune:
    type: sweep
    trial: ./train.yml
    sampling_algorithm: {type: random, seed: 4}
    search_space:
      lr: {type: uniform, min_value: 0.01, max_value: 0.1}
    objective: {goal: minimize, primary_metric: loss}
    limits: {max_total_trials: 4, max_concurrent_trials: 2}
    early_termination: {type: bandit, slack_factor: 0.1}
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
  nested:
    type: pipeline
    component: ./inner.yml
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
""",
    "sweep.yml": """
type: sweep
name: tune
trial:
  command: python train.py --lr ${{search_space.lr}} --data ${{inputs.data}}
  code: ./src
inputs:
  data: {type: uri_folder, path: ./data}
sampling_algorithm: grid
search_space:
  lr: {type: choice, values: [0.1, 0.2]}
objective: {goal: maximize, primary_metric: accuracy}
""",
    "command.yml": """
type: command
command: python train.py --epochs ${{inputs.epochs}} --out ${{outputs.out}}
code: ./src
inputs:
  epochs: 3
  ratio: {type: number, value: 2}
outputs:
  out: {type: uri_file}
""",
}


@pytest.mark.parametrize("name", ["pipeline.yml", "sweep.yml", "command.yml"])
def test_yaml_written_by_hand_survives_export(tmp_path: Path, name: str) -> None:
    for relative, content in YAML_PROJECT.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(content)
    job = load_job(tmp_path / name)
    exported = tmp_path / "exported" / name  # the same stem: an unnamed job is named after its file
    exported.parent.mkdir()
    exported.write_text(export_yaml(job, relative_to=exported.parent))
    assert comparable(load_job(exported)) == comparable(job)
