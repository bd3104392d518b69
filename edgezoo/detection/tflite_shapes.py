"""Static output shapes for TFLite_Detection_PostProcess in a .tflite file, for TensorFlow Lite Micro.

The converter leaves the op's four output tensors with shape `()`: LiteRT resizes them when the op runs, TFLM does not
(it plans every tensor from the file), so on TFLM the outputs come back zero-dimensional. The shapes follow from the
op's attributes: boxes [1, K, 4], classes [1, K], scores [1, K], num_detections [1], K = max_detections x
max_classes_per_detection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OP = "TFLite_Detection_PostProcess"
SAME_SHAPE_OPS = {6, 53, 114}  # the schema's BuiltinOperator DEQUANTIZE, CAST, QUANTIZE


def write_postprocess_shapes(path: Path, max_detections: int) -> int:
    """Write the shapes into every such op's outputs; returns how many ops were changed (0: none, the file untouched)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    codes = {i for i, code in enumerate(model.operatorCodes) if (code.customCode or b"").decode() == OP}
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
    if changed:
        flatbuffer_utils.write_model(model, str(path))
    return changed
