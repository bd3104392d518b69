"""What a .tflite really computes in: each op's precision read from the tensor types in the flatbuffer.

Reports list this, never what was asked for: a layer "kept in float" is one whose ops read float tensors in the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

CONVERSIONS = {"QUANTIZE", "DEQUANTIZE"}
INDEX_TYPES = {"int32", "int64", "bool", "string"}
FLOAT_TYPES = {"float32", "float16", "float64", "complex64", "complex128"}  # an STFT's complex values are float arithmetic  # shapes, indices, int32/int64 biases: not what an op computes in
FLOAT, INT8, INT16, DYNAMIC, CONVERSION, INDEX = "float32", "int8", "int16", "dynamic-int8", "conversion", "index"


@dataclass(frozen=True)
class OpPrecision:
    op: str
    layer: str
    output: str
    precision: str  # FLOAT, INT8, INT16 (int16 activations, int8 weights), DYNAMIC (float activations, int8 weights), ...

    @property
    def computes(self) -> bool:
        return self.precision not in (CONVERSION, INDEX)


def layer_name(tensor: str) -> str:
    """`digits_cnn/conv2/Relu;digits_cnn/conv2/BiasAdd;...` -> `digits_cnn/conv2`; an op outside any layer by its own name
    (`add_1;StatefulPartitionedCall/add_1` -> `add_1`)."""
    parts = [p for p in tensor.split(";")[0].split("/") if not p.endswith("PartitionedCall")]
    return "/".join(parts[:-1]) or (parts[-1] if parts else tensor)


def _precision(op: str, dtypes: tuple[str, ...]) -> str:
    if op in CONVERSIONS:
        return CONVERSION
    kinds = set(dtypes) - INDEX_TYPES
    if kinds & FLOAT_TYPES:
        return DYNAMIC if kinds & {"int8", "uint8"} and op not in ("GATHER", "EMBEDDING_LOOKUP") else FLOAT
    if "int16" in kinds:
        return INT16
    if kinds & {"int8", "uint8"}:
        return INT8
    return INDEX


def op_precisions(flatbuffer: bytes) -> tuple[OpPrecision, ...]:
    summary = read_flatbuffer(flatbuffer)
    return tuple(OpPrecision(node.op, layer_name(node.output_names[0]) if node.output_names else "", node.output_names[0]
                             if node.output_names else "", _precision(node.op, node.input_dtypes)) for node in summary.ops)


def describe(flatbuffer: bytes) -> dict:
    """For a report: how many ops compute in each precision, and the layers whose ops compute in float."""
    ops = op_precisions(flatbuffer)
    counts = Counter(op.precision for op in ops if op.computes)
    float_layers = list(dict.fromkeys(op.layer for op in ops if op.computes and op.precision in (FLOAT, DYNAMIC)))
    return {
        "ops_by_precision": dict(sorted(counts.items())),
        "conversions": sum(1 for op in ops if op.precision == CONVERSION),
        "float_layers": float_layers,
        "ops": [{"op": op.op, "layer": op.layer, "precision": op.precision} for op in ops if op.computes],
    }


def float_ops(flatbuffer: bytes) -> set[str]:
    """Output tensor names of the ops that compute in float."""
    return {op.output for op in op_precisions(flatbuffer) if op.computes and op.precision == FLOAT}
