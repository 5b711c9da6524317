"""Python components: signatures read as specs, ``python -m keel.function`` in a real
subprocess, and the in-process call the runner makes.

The components live in a real project folder (``python_project``, the package
``shop``), so their ``code`` and their subprocess imports are the real thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from keel.jobs import python_signature
from keel.jobs.python_call import call_function, function_target, load_function, write_output_value
from keel.jobs.python_component import FunctionError, Input, Output, component
from keel.specs.models import DATA_TYPES, LITERAL_TYPES, InputDecl, OutputDecl
from tests.jobs.python_shop import ORDERS, PROJECT, components

# -- a signature becomes a component ----------------------------------------------------


def test_a_signature_becomes_declared_inputs_and_outputs() -> None:
    spec = components.prep.component
    assert (spec.kind, spec.name, spec.version) == ("command", "prep", "1")
    assert spec.description == "Keep the orders worth at least ``min_amount``; return how many were kept."
    assert spec.code == str(PROJECT)
    assert spec.inputs == {
        "raw": InputDecl(type="uri_file", description="Orders as CSV."),
        "min_amount": InputDecl(type="number", default=0.0),
    }
    assert spec.outputs == {"clean": OutputDecl(type="uri_folder"), "output": OutputDecl(type="integer")}
    assert spec.command == (
        "python -m keel.function shop.components:prep --raw ${{inputs.raw}} "
        "--min_amount ${{inputs.min_amount}} --clean ${{outputs.clean}} --output ${{outputs.output}}"
    )


def test_options_typed_dict_returns_literal_choices_and_azure_style_annotations() -> None:
    score = components.score.component
    assert (score.name, score.version, score.environment.reference) == (
        "score_orders",
        "2",
        "azureml:sklearn-1.5:1",
    )
    assert score.inputs == {
        "data": InputDecl(type="uri_folder"),
        "threshold": InputDecl(type="number", min=0, max=1000, description="Pass mark."),
        "label": InputDecl(type="string", optional=True),
        "strict": InputDecl(type="boolean", default=False),
    }
    assert score.outputs == {
        "total": OutputDecl(type="number"),
        "passed": OutputDecl(type="boolean"),
        "note": OutputDecl(type="string"),
    }
    assert "$[[--label ${{inputs.label}}]]" in (score.command or "")
    report = components.report.component
    assert report.inputs["style"] == InputDecl(type="string", default="short", enum=["short", "long"])
    assert report.outputs == {"summary": OutputDecl(type="uri_file"), "output": OutputDecl(type="string")}
    assert report.is_deterministic is False


def test_type_names_are_the_spec_layers() -> None:
    assert python_signature.LITERAL_TYPES == LITERAL_TYPES
    assert python_signature.DATA_TYPES == DATA_TYPES


def test_outside_a_pipeline_a_component_is_the_plain_function(tmp_path: Path) -> None:
    assert components.prep(raw=str(ORDERS), clean=str(tmp_path), min_amount=100) == 1
    assert (tmp_path / "orders.csv").read_text() == "order,amount\na4,120.0\n"
    assert components.count(3, 0.5) == 1.5


class Partial(TypedDict, total=False):
    a: int


class Empty(TypedDict):
    pass


def unannotated(x):  # type: ignore[no-untyped-def]
    pass


def unsupported(x: list[int]) -> None: ...
def literal_output_parameter(x: Annotated[str, Output(type="number")]) -> None: ...
def data_default(x: Annotated[str, Input(type="uri_file")] = "orders.csv") -> None: ...
def variadic(*values: int) -> None: ...
def returns_data() -> Annotated[str, Output(type="uri_folder")]: ...
def mismatched(x: Annotated[int, Input(type="string")]) -> None: ...
def two_defaults(x: Annotated[int, Input(default=2)] = 3) -> None: ...
def clash(output: int) -> int: ...
def partial() -> Partial: ...
def empty() -> Empty: ...
def wrong_default(x: int = "three") -> None: ...  # type: ignore[assignment]
def out_of_range(x: Annotated[int, Input(max=3)] = 4) -> None: ...
def output_with_default(out: Annotated[str, Output()] = "here") -> None: ...
def returns_list() -> list[int]: ...
async def asynchronous(x: int) -> None: ...


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        (unannotated, "parameter 'x' has no annotation"),
        (unsupported, "parameter 'x': list[int] is not a type Keel can pass"),
        (literal_output_parameter, "parameter 'x': a literal output is returned, not passed"),
        (data_default, "parameter 'x': a component's data input takes no default path"),
        (variadic, "parameter 'values': inputs are passed by name"),
        (returns_data, "returned output 'output': data is written into an Output parameter"),
        (mismatched, "parameter 'x': annotated int but declared Input(type='string')"),
        (two_defaults, "parameter 'x': the default 3 differs from Input(default=2)"),
        (clash, "the returned output 'output' has the name of a parameter"),
        (partial, "the returned Partial must have fields, all required"),
        (empty, "the returned Empty must have fields"),
        (wrong_default, "parameter 'x': default: expected an integer, got 'three'"),
        (out_of_range, "parameter 'x': default: 4 is above the maximum 3"),
        (output_with_default, "parameter 'out': an output parameter takes no default"),
        (returns_list, "returned output 'output': list[int] cannot be returned"),
        (asynchronous, "a component is a plain function, not async"),
    ],
)
def test_an_unreadable_signature_is_refused_naming_function_and_parameter(
    function: Any, problem: str
) -> None:
    with pytest.raises(FunctionError) as caught:
        component(function)
    assert str(caught.value).startswith(f"component {function.__name__}: ")
    assert problem in str(caught.value)


def test_declarations_and_names_are_checked_too() -> None:
    with pytest.raises(FunctionError, match="Input\\(type='table'\\) is not a type Keel knows"):
        Input(type="table")
    with pytest.raises(FunctionError, match="'Train-Model' is not a valid name"):
        component(name="Train-Model")(components.double)


# -- python -m keel.function --------------------------------------------------------------


def run_function(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "keel.function", *args]
    return subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=60, check=False)


def test_keel_function_runs_a_component_in_a_subprocess(tmp_path: Path) -> None:
    clean, count = tmp_path / "clean", tmp_path / "count" / "value"
    result = run_function(
        "shop.components:prep",
        *("--raw", str(ORDERS), "--min_amount", "10"),
        *("--clean", str(clean), "--output", str(count)),
    )
    assert result.returncode == 0, result.stderr
    assert (clean / "orders.csv").read_text().splitlines() == [
        "order,amount",
        "a2,12.5",
        "a3,40.0",
        "a4,120.0",
    ]
    assert json.loads(count.read_text()) == 3


def test_keel_function_reads_azure_style_text_and_writes_every_returned_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("order,amount\nb1,60\n")
    files = {name: tmp_path / name for name in ("total", "passed", "note")}
    outputs = [f"--{name}={path}" for name, path in files.items()]
    result = run_function(
        "shop.components:score", f"--data={data}", "--threshold", "50", "--strict", "True", *outputs
    )
    assert result.returncode == 0, result.stderr
    assert {name: json.loads(path.read_text()) for name, path in files.items()} == {
        "total": 60.0,
        "passed": True,
        "note": "total: 60",
    }


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ("shop.components:count", "--items", "lots"),
            "component count: input 'items': expected an integer, got 'lots'",
        ),
        (
            ("shop.components:count", "--items", "1", "--size", "2"),
            "component count has no input or output 'size'",
        ),
        (("shop.components:nothing",), "shop.components:nothing: shop.components has no function nothing"),
        (("shop.missing:count",), "cannot import shop.missing"),
        ((), "usage: python -m keel.function <module>:<function>"),
    ],
)
def test_keel_function_refuses_bad_arguments_in_one_line(args: tuple[str, ...], problem: str) -> None:
    result = run_function(*args)
    assert result.returncode == 2
    assert result.stderr == f"keel.function: error: {result.stderr.removeprefix('keel.function: error: ')}"
    assert result.stderr.count("\n") == 1
    assert problem in result.stderr


def test_running_a_component_imports_neither_pydantic_nor_sqlalchemy() -> None:
    code = (
        "import sys; from keel.function import main; main(['shop.components:count', '--items', '2']); "
        "print(sorted(m for m in ('pydantic', 'sqlalchemy', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- in process: what the runner calls ------------------------------------------------------


def test_the_runner_finds_the_target_and_calls_the_function_in_process(tmp_path: Path) -> None:
    target = function_target(components.prep.component)
    assert target == "shop.components:prep"
    clean = tmp_path / "does" / "not" / "exist" / "yet"
    outputs = call_function(target, {"raw": ORDERS, "min_amount": "10", "clean": clean, "output": "ignored"})
    assert outputs == {"output": 3}
    assert (clean / "orders.csv").is_file()


def test_arguments_may_be_typed_or_text_and_defaults_fill_in(tmp_path: Path) -> None:
    assert call_function("shop.components:count", {"items": "4"}) == {"output": 4.0}
    assert call_function("shop.components:count", {"items": 2, "scale": 2.5}) == {"output": 5.0}
    assert call_function("shop.components:double", {"value": "21"}) == {"output": 42}  # not decorated
    with pytest.raises(FileNotFoundError):  # the function's own error, unchanged
        call_function("shop.components:score", {"data": tmp_path, "threshold": 1, "strict": "false"})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (
            {"items": 1, "size": 2},
            "component count has no input or output 'size' (inputs: items, scale; outputs: output)",
        ),
        ({}, "component count: input 'items' is required"),
        ({"items": True}, "input 'items': expected an integer, got True"),
        ({"items": "1.5"}, "input 'items': expected an integer, got '1.5'"),
        ({"items": 1, "scale": "nan"}, "input 'scale': expected a number, got nan"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(FunctionError) as caught:
        call_function("shop.components:count", arguments)
    assert problem in str(caught.value)


def test_ranges_errors_and_returned_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match=r"input 'threshold': 5000\.0 is above the maximum 1000"):
        call_function("shop.components:score", {"data": tmp_path, "threshold": 5000})
    with pytest.raises(RuntimeError, match="boom"):
        call_function("shop.components:explode", {"message": "boom"})

    @component
    def liar(x: int) -> int:
        return str(x)  # type: ignore[return-value]

    @component
    def chatty(x: int):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(FunctionError, match=r"\.liar: output 'output': expected an integer, got '1'"):
        call_function(liar.target, {"x": 1})
    with pytest.raises(FunctionError, match=r"\.chatty returned 1 but declares no output"):
        call_function(chatty.target, {"x": 1})


def test_components_defined_in_a_function_keep_their_own_targets() -> None:
    def scaled_by(factor: int) -> Any:
        @component(name="scaled")
        def scaled(x: int) -> int:
            return x * factor

        return scaled

    double, triple = scaled_by(2), scaled_by(3)
    assert double.target != triple.target
    assert call_function(double.target, {"x": 5}) == {"output": 10}
    assert call_function(triple.target, {"x": 5}) == {"output": 15}
    with pytest.raises(FunctionError, match="was defined inside another function"):
        load_function(double.target + "0")


def test_a_module_not_yet_imported_is_imported_from_the_code_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "late_shop.py").write_text(
        "from keel.jobs.python_component import component\n\n"
        "@component\ndef greet(name: str) -> str:\n    return f'hello {name}'\n"
    )
    try:
        assert call_function("late_shop:greet", {"name": "keel"}, code=str(tmp_path)) == {
            "output": "hello keel"
        }
    finally:
        sys.modules.pop("late_shop", None)


def test_other_commands_are_not_function_targets() -> None:
    spec = components.count.component
    assert function_target(spec.model_copy(update={"command": spec.command + " --verbose"})) is None
    assert (
        function_target(spec.model_copy(update={"command": "python count.py --items ${{inputs.items}}"}))
        is None
    )
    optional = spec.model_copy(
        update={"inputs": {**spec.inputs, "items": InputDecl(type="integer", optional=True)}}
    )
    assert function_target(optional) is None  # the command no longer matches its declarations


def test_literal_outputs_are_written_whole(tmp_path: Path) -> None:
    write_output_value(tmp_path / "new" / "value", 0.5)
    write_output_value(tmp_path / "new" / "value", "done")
    assert json.loads((tmp_path / "new" / "value").read_text()) == "done"
    assert [path.name for path in (tmp_path / "new").iterdir()] == ["value"]
