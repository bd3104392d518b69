"""What a model costs a device, whatever the format: its parameter count and a MACs estimate.

Both come from the canonical SavedModel's serving signature, traced for a batch of one at the input
shapes the artifact was made for, and frozen: parameters are the elements of the variables it reads,
and MACs are the multiply-accumulates of its convolutions and matrix products (element-wise ops,
pooling and activations are left out, which is what "MACs" usually counts). Dynamic input sizes give
no MACs figure.
"""

from __future__ import annotations

from functools import lru_cache
from edgezoo import _tf
from edgezoo.zoo.base import LoadedModel


def _elements(shape) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


_COUNTED = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _macs(op) -> int:
    """Multiply-accumulates of one frozen-graph op with static shapes; 0 for ops that are not counted."""
    if op.type not in _COUNTED or not op.outputs[0].shape.is_fully_defined():
        return 0
    out = op.outputs[0].shape
    if op.type in ("Conv2D", "Conv3D"):
        return _elements(out) * _elements(op.inputs[1].shape[:-1])  # filter [..k.., Cin, Cout]
    if op.type == "DepthwiseConv2dNative":
        return _elements(out) * _elements(op.inputs[1].shape[:2])  # filter [KH, KW, Cin, M]
    if op.type == "Conv2DBackpropInput":  # transposed convolution: every input value meets the whole filter
        return _elements(op.inputs[2].shape) * _elements(op.inputs[1].shape[:3])
    if op.type == "MatMul":
        a = op.inputs[0].shape
        return _elements(out) * int(a[-2] if op.get_attr("transpose_a") else a[-1])
    if op.type in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape
        return _elements(out) * int(a[-2] if op.get_attr("adj_x") else a[-1])
    return 0


@lru_cache(maxsize=16)
def _cost(model: LoadedModel, shapes: tuple[tuple[str, tuple], ...]) -> dict:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from edgezoo.targets.static_shape import show
    from edgezoo.zoo.signature import traced_signature

    _, concrete = traced_signature(model, dict(shapes))
    parameters = sum(_elements(v.shape) for v in concrete.variables)
    dynamic = [f"{name} {show(shape)}" for name, shape in shapes if None in shape]
    if dynamic:  # convolutions over a size known only at run time: no count, rather than a count of zero
        return {"parameter_count": int(parameters), "macs": None, "macs_batch": 1,
                "note": f"MACs depend on the input size, dynamic in {', '.join(dynamic)}; fix it with --input-shape to count them."}
    with _tf.quiet_native_output():
        frozen = convert_variables_to_constants_v2(concrete)  # inlines the SavedModel's nested functions
    macs = sum(_macs(op) for op in frozen.graph.get_operations())
    return {"parameter_count": int(parameters), "macs": int(macs), "macs_batch": 1}


def model_cost(model: LoadedModel, input_shapes: dict | None = None) -> dict:
    """{"parameter_count", "macs" (per sample), "macs_batch"} at these input shapes (default: the model's), batch one;
    None figures when the model cannot be traced."""
    shapes = {spec.name: spec.shape for spec in model.inputs}
    shapes |= {name: shape for name, shape in (input_shapes or {}).items() if name in shapes}
    try:
        return dict(_cost(model, tuple((name, (1, *tuple(shape)[1:])) for name, shape in sorted(shapes.items()))))
    except Exception as exc:  # a report figure must never fail the conversion it describes
        return {"parameter_count": None, "macs": None, "macs_batch": 1, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def footprint(model: LoadedModel, artifact) -> dict:
    """The report's figures of what one target's artifact asks of the device, at the input shapes it was made for."""
    return {
        "ops_used": list(artifact.ops),
        **model_cost(model, artifact.details.get("input_shapes")),
        "model_size_bytes": artifact.size_bytes,
        "arena_bytes": artifact.details.get("arena_bytes"),  # where the runtime measures one (TFLM)
    }
