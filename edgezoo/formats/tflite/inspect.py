"""A .tflite file read from its flatbuffer (no interpreter needed, so files a runtime cannot load are read too):
the signature's inputs and outputs with their quantisation, the ops and which runtime has a kernel for each,
the quantisation the tensors show, and the TFLite metadata with its labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgezoo.formats.inspect import ArtifactInfo, TensorInfo
from edgezoo.formats.base import Quantization
from edgezoo.errors import CorruptModelError

FORMAT = "tflite"
TARGET = "phone"
# Custom ops (by their custom code) that LiteRT's builtin op resolver runs; other custom and Flex ops need a delegate.
LITERT_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})


def matches(path: Path) -> bool:
    return path.suffix == ".tflite"


def read(path: Path) -> ArtifactInfo:
    from edgezoo.formats.tflite.flatbuffer import open_model, read_flatbuffer, readable
    from edgezoo.formats.tflite import metadata as tflite_metadata

    data = path.read_bytes()
    summary = read_flatbuffer(data)  # CorruptModelError when it is not a .tflite flatbuffer
    with readable(f"{path} is a damaged .tflite flatbuffer"):
        subgraph = open_model(data)[0].Subgraphs(0)
        input_indices = list(subgraph.InputsAsNumpy()) if subgraph.InputsLength() else []
        output_indices = list(subgraph.OutputsAsNumpy()) if subgraph.OutputsLength() else []
        inputs = tuple(_tensor(io.name, subgraph.Tensors(int(input_indices[io.position]))) for io in summary.inputs)
        outputs = tuple(_tensor(io.name, subgraph.Tensors(int(output_indices[io.position]))) for io in summary.outputs)
        tensors = [_tensor("", subgraph.Tensors(i)) for i in range(subgraph.TensorsLength())]
    ops = summary.op_names
    return ArtifactInfo(
        format=FORMAT,
        main=path,
        files=(path,),
        input_tensors=inputs,
        output_tensors=outputs,
        ops=ops,
        quantization=detect_quantization(tensors, inputs, ops),
        metadata=tflite_metadata.read(path),
        details={"op_support": op_support(ops)},
    )


def _tensor(name: str, tensor) -> TensorInfo:
    from edgezoo.formats.tflite.flatbuffer import dtype_name

    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    signature = tuple(int(d) for d in tensor.ShapeSignatureAsNumpy()) if tensor.ShapeSignatureLength() else shape
    quantization = tensor.Quantization()
    scale, zero_point, axis = (), (), None
    if quantization is not None and quantization.ScaleLength():
        scale = tuple(float(s) for s in quantization.ScaleAsNumpy())
        zero_point = tuple(int(z) for z in quantization.ZeroPointAsNumpy()) if quantization.ZeroPointLength() else (0,) * len(scale)
        axis = int(quantization.QuantizedDimension()) if len(scale) > 1 else None
    dtype = dtype_name(tensor.Type())
    return TensorInfo(name or (tensor.Name() or b"").decode(), tuple(None if d < 0 else d for d in signature), dtype, scale, zero_point, axis)


def detect_quantization(tensors: list[TensorInfo], inputs: tuple[TensorInfo, ...], ops: tuple[str, ...]) -> Quantization:
    """The quantisation a converted model shows: integer activations, float16 weights, int8 weights alone."""
    if any(t.dtype == "int16" and t.quantized and any(t.scale) for t in tensors):
        return Quantization.INT16X8
    if "QUANTIZE" in ops or any(np.dtype(t.dtype).kind in "iu" and t.quantized and any(t.scale) for t in inputs):
        return Quantization.INT8
    dtypes = {t.dtype for t in tensors}
    if "float16" in dtypes:
        return Quantization.FLOAT16
    if "int8" in dtypes:
        return Quantization.DYNAMIC_INT8
    return Quantization.FLOAT32


def op_support(ops: tuple[str, ...]) -> dict:
    """Which delegate-free runtime has a kernel for each op: LiteRT (every builtin op of the schema, and the custom
    ops its resolver registers) and TensorFlow Lite Micro (the kernels the installed tflite-micro links in)."""
    from edgezoo.formats.tflite.flatbuffer import builtin_op_names
    from edgezoo.errors import UsageError

    litert = builtin_op_names() | LITERT_CUSTOM_OPS
    support = {"litert": {"missing": sorted(op for op in ops if op not in litert)}}
    try:
        from edgezoo.formats.tflite.tflm_ops import supported_ops

        tflm = supported_ops()
        support["tflm"] = {"missing": sorted(op for op in ops if op not in tflm)}
    except UsageError as exc:  # tflite-micro not installed
        support["tflm"] = {"missing": None, "note": str(exc)}
    for runtime in support.values():
        runtime["runs_all"] = runtime["missing"] == [] if runtime["missing"] is not None else None
    return support
