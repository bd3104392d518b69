"""Deliberately broken artifacts, to show that parity checks catch them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tamper_tflite_weights(path: Path, seed: int = 0) -> None:
    """Shuffle the values of the largest float32 weight buffer: the file stays valid, the model is wrong."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    float32 = 0  # TensorType.FLOAT32 in the TFLite schema
    float_buffers = {tensor.buffer for sub in model.subgraphs for tensor in sub.tensors if tensor.type == float32}
    candidates = [i for i in float_buffers if model.buffers[i].data is not None and len(model.buffers[i].data) >= 64]
    assert candidates, f"{path} has no float32 weight buffer to tamper with"
    largest = max(candidates, key=lambda i: len(model.buffers[i].data))
    values = np.frombuffer(bytes(model.buffers[largest].data), dtype=np.float32).copy()
    np.random.default_rng(seed).shuffle(values)
    model.buffers[largest].data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    flatbuffer_utils.write_model(model, str(path))
