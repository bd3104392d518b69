"""What the converter leaves wrong about TFLite_Detection_PostProcess' outputs in a .tflite file, written right.

Shapes, for TensorFlow Lite Micro: the converter leaves the op's four output tensors with shape `()`: LiteRT resizes
them when the op runs, TFLM does not (it plans every tensor from the file), so on TFLM the outputs come back
zero-dimensional. The shapes follow from the op's attributes: boxes [1, K, 4], classes [1, K], scores [1, K],
num_detections [1], K = max_detections x max_classes_per_detection.

Int8 ranges, for integer outputs: the QUANTIZE after each output is calibrated on what the op wrote, slots past
num_detections included, which the op leaves uninitialised (1e38 and NaN seen): the boxes' range came out 8 units wide
(a step of 0.03 on [0, 1] boxes, 4 pixels at 128) and different from one conversion to the next. The outputs' ranges are
known by construction, so they are written in: boxes [-0.25, 1.25] (normalised; the op does not clip), scores [0, 1],
and classes and count as whole numbers 0..255 (scale 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OP = "TFLite_Detection_PostProcess"
SAME_SHAPE_OPS = {6, 53, 114}  # the schema's BuiltinOperator DEQUANTIZE, CAST, QUANTIZE
QUANTIZE = 114
INT8 = 9  # the schema's TensorType
# (low, high) of each of the op's outputs, in its order: boxes, classes, scores, num_detections.
OUTPUT_RANGES = ((-0.25, 1.25), (0.0, 255.0), (0.0, 1.0), (0.0, 255.0))


def write_postprocess_fixes(path: Path, max_detections: int) -> int:
    """Write the op's output shapes and, for int8 outputs, their ranges into the file (module docstring), read and
    written once; returns how many things changed (0: no such op, the file untouched)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    codes = {i for i, code in enumerate(model.operatorCodes) if (code.customCode or b"").decode() == OP}
    changed = _write_shapes(model, codes, max_detections) + _write_ranges(model, codes)
    if changed:
        flatbuffer_utils.write_model(model, str(path))
    return changed


def _write_shapes(model, codes: set[int], max_detections: int) -> int:
    """The shapes into every such op's outputs; returns how many ops were changed."""
    shapes = ([1, max_detections, 4], [1, max_detections], [1, max_detections], [1])
    # Ops that keep their input's shape and may follow the op (an integer-io model quantises its float outputs).
    same_shape = {i for i, code in enumerate(model.operatorCodes) if max(code.builtinCode, code.deprecatedBuiltinCode) in SAME_SHAPE_OPS}
    changed = 0
    for subgraph in model.subgraphs:
        known: dict[int, list[int]] = {}
        for operator in subgraph.operators:
            if operator.opcodeIndex in codes:
                known.update(zip(operator.outputs, shapes))
                changed += 1
            elif operator.opcodeIndex in same_shape and len(operator.inputs) and operator.inputs[0] in known:
                known[operator.outputs[0]] = known[operator.inputs[0]]
        for index, shape in known.items():
            subgraph.tensors[index].shape = np.array(shape, np.int32)
            subgraph.tensors[index].shapeSignature = np.array(shape, np.int32)
    return changed


def _write_ranges(model, codes: set[int]) -> int:
    """The known range into the int8 QUANTIZE after each output of the op; returns how many tensors changed (0: a float model)."""
    quantize = {i for i, code in enumerate(model.operatorCodes) if max(code.builtinCode, code.deprecatedBuiltinCode) == QUANTIZE}
    changed = 0
    for subgraph in model.subgraphs:
        ranges = {}
        for operator in subgraph.operators:
            if operator.opcodeIndex in codes:
                ranges.update(zip(operator.outputs, OUTPUT_RANGES))
        for operator in subgraph.operators:
            if operator.opcodeIndex in quantize and operator.inputs[0] in ranges:
                tensor = subgraph.tensors[operator.outputs[0]]
                if tensor.type != INT8 or tensor.quantization is None:
                    continue
                low, high = ranges[operator.inputs[0]]
                scale = (high - low) / 255.0
                tensor.quantization.scale = np.array([scale], np.float32)
                tensor.quantization.zeroPoint = np.array([int(round(-128 - low / scale))], np.int64)
                changed += 1
    return changed
