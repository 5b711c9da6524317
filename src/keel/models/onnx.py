"""ONNX: a scikit-learn model converted (skl2onnx) so it can be scored without any pickle.

The converted graph takes one float tensor with a column per signature input, in
the signature's order, which is the order :meth:`LoadedModel.validate` puts a
frame's columns in. Classifiers are converted without the ZipMap operator and keep
only their first output, the labels (what ``predict`` returns), so MLflow's ONNX
loader, which turns every output into a column, loads the model too. Needs ``keelml[onnx]``.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InvalidInput

INPUT_NAME = "input"


def convert(model: Any, signature: dict[str, Any] | None, example: Any) -> bytes:
    """The ONNX bytes of a fitted scikit-learn model (``example`` or the signature give the width)."""
    from keel.models.scoring import require

    require("skl2onnx", "onnx")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.helpers.onnx_helper import select_model_inputs_outputs

    width = _width(signature, example)
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    try:
        graph = to_onnx(model, initial_types=[(INPUT_NAME, FloatTensorType([None, width]))], options=options)
    except Exception as exc:  # skl2onnx names what it cannot convert
        raise InvalidInput(f"cannot convert {type(model).__name__} to ONNX: {exc}") from None
    first = graph.graph.output[0].name  # what predict() returns; MLflow's loader wants one output
    return select_model_inputs_outputs(graph, outputs=[first]).SerializeToString()  # type: ignore[no-any-return]


def _width(signature: dict[str, Any] | None, example: Any) -> int:
    inputs = (signature or {}).get("inputs") or []
    if inputs and all(item.get("type") != "tensor" for item in inputs):
        return len(inputs)
    if example is not None and hasattr(example, "shape") and len(example.shape) == 2:
        return int(example.shape[1])
    shape = (inputs[0].get("tensor-spec") or {}).get("shape") or [] if inputs else []
    if len(shape) == 2 and int(shape[1]) > 0:
        return int(shape[1])
    raise InvalidInput(
        "converting to ONNX needs the number of input columns",
        hint="give input_example= (or a signature naming the columns)",
    )
