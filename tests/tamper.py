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


def tamper_onnx_weights(path: Path, seed: int = 0) -> None:
    """Shuffle the values of the largest float initializer of an .onnx model: still a valid model, now wrong."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats, f"{path} has no float initializer to tamper with"
    largest = max(floats, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(largest).copy()
    np.random.default_rng(seed).shuffle(values.reshape(-1))
    largest.CopyFrom(numpy_helper.from_array(values, name=largest.name))
    onnx.save(model, str(path))


def tamper_tfjs_weights(model_json: Path, seed: int = 0) -> None:
    """Shuffle the largest float32 weight of a TF.js graph model inside its shards (sizes unchanged)."""
    import json

    manifest = json.loads(model_json.read_text())["weightsManifest"]
    shards = [model_json.parent / path for group in manifest for path in group["paths"]]
    data = bytearray(b"".join(shard.read_bytes() for shard in shards))
    offset, spans = 0, []
    item_bytes = {"float32": 4, "int32": 4, "bool": 1}  # unquantised weights; bool constants come from control flow
    for group in manifest:
        for weight in group["weights"]:
            assert "quantization" not in weight and weight["dtype"] in item_bytes, weight
            size = int(np.prod(weight["shape"])) * item_bytes[weight["dtype"]]
            if weight["dtype"] == "float32":
                spans.append((size, offset))
            offset += size
    assert offset == len(data), "the manifest does not describe the shards"
    size, start = max(spans)
    values = np.frombuffer(bytes(data[start : start + size]), dtype=np.float32).copy()
    np.random.default_rng(seed).shuffle(values)
    data[start : start + size] = values.tobytes()
    for shard in shards:
        length = shard.stat().st_size
        shard.write_bytes(bytes(data[:length]))
        del data[:length]
