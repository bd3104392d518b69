"""ONNX through tf2onnx, from the canonical SavedModel's serving signature.

The batch dimension stays as the SavedModel has it: dynamic (named `batch`), or fixed when the
model or the profile (`fixed_batch`) fixes it before conversion.

Inputs and outputs keep the signature's names (left alone, tf2onnx names outputs `Identity:0` or
`StatefulPartitionedCall:N`), the model must pass onnx.checker, and TensorFlow ops tf2onnx cannot
map are refused with the layers they come from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgezoo import _tf
from edgezoo.formats.base import Artifact, ConversionRequest, FormatOptions, Quantization, describe_ops_by_layer, first_line
from edgezoo.errors import ConversionError, TargetConstraintError, UsageError
from edgezoo.zoo.base import LoadedModel

FORMAT = "onnx"
FILENAME = "model.onnx"
# tf2onnx 1.17 maps ops for opsets up to 18; 17 is recent and read by every maintained ONNX Runtime.
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 11, 18
BATCH_DIM_NAME = "batch"
# Float tensors smaller than this stay float32: scalars and shape-like constants (Resize scales, Clip bounds).
MIN_FLOAT16_ELEMENTS = 16
# onnx.defs knows the standard domains only; ONNX Runtime also runs its own contrib domain.
RUNTIME_DOMAINS = {"com.microsoft"}
# float16 stores weights as float16; int8 and dynamic-int8 come from ONNX Runtime's quantiser (formats/onnx/quantize.py).
QUANTIZATIONS = (Quantization.FLOAT32, Quantization.FLOAT16, Quantization.INT8, Quantization.DYNAMIC_INT8)


@dataclass(frozen=True)
class Options(FormatOptions):
    opset: int = DEFAULT_OPSET

    def __post_init__(self):
        if not isinstance(self.opset, int) or isinstance(self.opset, bool) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UsageError(f"opset must be a whole number from {MIN_OPSET} to {MAX_OPSET} (tf2onnx's range), not {self.opset!r}.")


def convert(model: LoadedModel, request: ConversionRequest, workdir: Path) -> Artifact:
    import onnx

    options = FormatOptions.of(request, Options)
    if request.quantization not in QUANTIZATIONS:
        raise UsageError(
            f"the onnx format supports {', '.join(q.value for q in QUANTIZATIONS)}, not {request.quantization.value}. "
            "Use one of those with --quantize for an ONNX target."
        )
    proto = _run_tf2onnx(model, options)
    _refuse_unconverted_ops(proto, model)
    _check_names(proto, model)
    _name_batch_dimension(proto)
    if request.quantization is Quantization.FLOAT16:
        store_weights_as_float16(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"the ONNX model tf2onnx made from {model.name} fails onnx.checker: {first_line(exc)}") from exc
    path = workdir / FILENAME
    if request.quantization in (Quantization.INT8, Quantization.DYNAMIC_INT8):
        from edgezoo.formats.onnx.quantize import quantize

        float_path = workdir / "float32.onnx"
        float_path.write_bytes(proto.SerializeToString())
        quantize(float_path, path, request.quantization, request.calibration)
        float_path.unlink()
        proto = onnx.load(str(path))
    else:
        path.write_bytes(proto.SerializeToString())
    return Artifact.of_model(
        model, request, format=FORMAT, files=(path,), ops=sorted({node.op_type for node in proto.graph.node}),
        details={"opset": options.opset, "batch": batch_dimension(proto)},
    )


def _run_tf2onnx(model: LoadedModel, options: Options):
    _tf.tf()
    from tf2onnx import convert as tf2onnx_convert
    from tf2onnx import tf_loader

    quiet = not _tf.is_verbose()
    logger = logging.getLogger("tf2onnx")
    previous_level = logger.level
    if quiet:
        logger.setLevel(logging.CRITICAL)  # unmapped ops are reported below, with their layers
    try:
        with _tf.quiet_native_output() as log:
            graph_def, inputs, outputs, _tables, tensors_to_rename = tf_loader.from_saved_model(
                str(model.saved_model_dir), None, None, tag="serve", signatures=[model.signature_key],
                return_initialized_tables=True, return_tensors_to_rename=True,
            )
            proto, _ = tf2onnx_convert.from_graph_def(
                graph_def,
                name=model.name,
                input_names=inputs,
                output_names=outputs,
                opset=options.opset,
                tensors_to_rename=tensors_to_rename,  # graph tensor names -> the signature's names
            )
    except Exception as exc:  # tf2onnx raises many kinds (ValueError, KeyError, TypeError...) on graphs it cannot handle
        raise ConversionError(
            f"tf2onnx could not convert {model.name} (opset {options.opset}): {type(exc).__name__}: {first_line(exc)}\n"
            f"{log.tail() if quiet else ''}\nRun with --verbose for the converter's full log."
        ) from exc
    finally:
        logger.setLevel(previous_level)
    return proto


def unconverted_nodes(proto) -> list[tuple[str, str]]:
    """(op, node name) of every node no ONNX runtime knows: TensorFlow ops tf2onnx left as they were."""
    import onnx

    return [
        (node.op_type, node.name)
        for node in proto.graph.node
        if node.domain not in RUNTIME_DOMAINS and not onnx.defs.has(node.op_type, node.domain or "")
    ]


def _refuse_unconverted_ops(proto, model: LoadedModel) -> None:
    nodes = unconverted_nodes(proto)
    if nodes:
        raise TargetConstraintError(
            f"{model.name} uses TensorFlow ops that tf2onnx cannot express in ONNX: {describe_ops_by_layer(nodes)}. "
            "Replace those layers with standard ones, or choose a target whose runtime supports them."
        )


def _check_names(proto, model: LoadedModel) -> None:
    for kind, got, expected in (
        ("inputs", [i.name for i in proto.graph.input], [s.name for s in model.inputs]),
        ("outputs", [o.name for o in proto.graph.output], [s.name for s in model.outputs]),
    ):
        if sorted(got) != sorted(expected):
            raise ConversionError(
                f"tf2onnx named the {kind} of {model.name} {', '.join(got)} instead of the signature's {', '.join(expected)}."
            )


def batch_dimension(proto) -> int | str:
    """The first input's batch size, or the name of its dynamic dimension."""
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else dim.dim_param


def _name_batch_dimension(proto) -> None:
    """tf2onnx calls a dynamic batch `unk__21`; say what it is."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_param"):
            dims[0].dim_param = BATCH_DIM_NAME


def store_weights_as_float16(proto) -> int:
    """Keep float32 weights as float16 in the file, each cast back to float32 when the model loads.

    Arithmetic stays float32 on every runtime, like TFLite's float16 weights. Returns how many tensors changed.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    kept, casts = [], []
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor) if tensor.data_type == TensorProto.FLOAT else None
        if values is None or values.size < MIN_FLOAT16_ELEMENTS or not np.all(np.isfinite(values.astype(np.float16))):
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{tensor.name}__float16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT, name=f"{tensor.name}__to_float32"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first: the graph stays topologically sorted
    return len(casts)
