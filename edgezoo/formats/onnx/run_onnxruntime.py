"""ONNX Runtime on the CPU, in process; inputs and outputs by the signature's names."""

from __future__ import annotations

import numpy as np

from edgezoo.formats.base import Artifact
from edgezoo.errors import RuntimeFailure
from edgezoo.formats.runtime import check_sample_shape, pad_batch

RUNTIME = "onnxruntime"
BATCH_SIZE = 64  # for models with a dynamic batch dimension


def run(artifact: Artifact, inputs: dict[str, np.ndarray], num_threads: int = 1) -> dict[str, np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.log_severity_level = 3  # errors only; failures reach the user through RuntimeFailure
    try:
        session = onnxruntime.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail...) are not exported
        raise RuntimeFailure(f"ONNX Runtime cannot load {artifact.path}: {exc}") from exc
    expected = [i.name for i in session.get_inputs()]
    if sorted(expected) != sorted(inputs):
        raise RuntimeFailure(f"{artifact.path} expects inputs {', '.join(expected)}, but was given {', '.join(sorted(inputs))}.")
    for spec in session.get_inputs():
        check_sample_shape(artifact.path, spec.name, [d if isinstance(d, int) else None for d in spec.shape], inputs[spec.name])
    output_names = [o.name for o in session.get_outputs()]
    batch = session.get_inputs()[0].shape[0]
    fixed_batch = batch if isinstance(batch, int) else None
    count = len(next(iter(inputs.values())))
    step = fixed_batch or BATCH_SIZE
    results: dict[str, list[np.ndarray]] = {name: [] for name in output_names}
    for start in range(0, count, step):
        feed = {name: pad_batch(array[start : start + step], fixed_batch) for name, array in inputs.items()}
        try:
            values = session.run(output_names, feed)
        except Exception as exc:
            raise RuntimeFailure(f"ONNX Runtime failed to run {artifact.path}: {exc}") from exc
        taken = min(step, count - start)
        for name, value in zip(output_names, values):
            results[name].append(value[:taken])
    return {name: np.concatenate(parts) for name, parts in results.items()}
