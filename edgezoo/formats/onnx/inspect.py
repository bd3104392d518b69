"""An .onnx file read with the onnx package (weights kept external if they are): inputs and outputs, ops, the
quantisation its initializers and ops show, opset and producer, and the metadata_props edgezoo writes."""

from __future__ import annotations

from pathlib import Path

from edgezoo.formats.inspect import ArtifactInfo, TensorInfo
from edgezoo.formats.base import Quantization
from edgezoo.errors import CorruptModelError

FORMAT = "onnx"
TARGET = "onnx"
DYNAMIC_INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}
INT8_OPS = {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}


def matches(path: Path) -> bool:
    return path.suffix == ".onnx"


def read(path: Path) -> ArtifactInfo:
    import onnx

    from edgezoo.formats.onnx import metadata as onnx_metadata

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx' own errors
        raise CorruptModelError(f"{path} is not an ONNX model: {exc}") from exc
    try:  # a damaged file can hold names that are not UTF-8 (protobuf hands them over as bytes)
        graph = proto.graph
        initializers = {t.name for t in graph.initializer}
        ops = tuple(sorted({node.op_type for node in graph.node}))
        if set(ops) & DYNAMIC_INT8_OPS:
            quantization = Quantization.DYNAMIC_INT8
        elif set(ops) & INT8_OPS:
            quantization = Quantization.INT8
        elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer):
            quantization = Quantization.FLOAT16
        else:
            quantization = Quantization.FLOAT32
        values = {entry.key: entry.value for entry in proto.metadata_props}
        input_tensors = tuple(_tensor(value) for value in graph.input if value.name not in initializers)
        output_tensors = tuple(_tensor(value) for value in graph.output)
        if not all(isinstance(name, str) for name in (*ops, *(t.name for t in (*input_tensors, *output_tensors)))):
            raise ValueError("op or tensor names that are not UTF-8 text")
        return ArtifactInfo(
            format=FORMAT,
            main=path,
            files=(path,),
            input_tensors=input_tensors,
            output_tensors=output_tensors,
            ops=ops,
            quantization=quantization,
            metadata=onnx_metadata.parse(values, proto.doc_string) if values or proto.doc_string else None,
            details={"opset": {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import},
                     "producer": f"{proto.producer_name} {proto.producer_version}".strip()},
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptModelError(f"{path} is a damaged ONNX model: {type(exc).__name__}: {exc}") from exc


def _tensor(value) -> TensorInfo:
    import onnx

    tensor_type = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
    except (KeyError, ValueError):
        dtype = onnx.TensorProto.DataType.Name(tensor_type.elem_type).lower()
    return TensorInfo(value.name, dims, dtype)
