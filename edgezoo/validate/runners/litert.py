"""LiteRT (ai_edge_litert), the TFLite runtime phones run, through the model's signature runner."""

from __future__ import annotations

import numpy as np

from edgezoo.converter.base import Artifact
from edgezoo.converter.tflite import dequantize_output, quantize_input
from edgezoo.errors import RuntimeFailure

RUNTIME = "litert"


def run(artifact: Artifact, inputs: dict[str, np.ndarray], num_threads: int = 1) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(artifact.path), num_threads=num_threads)
        runner = interpreter.get_signature_runner()
    except (ValueError, RuntimeError) as exc:
        raise RuntimeFailure(f"LiteRT cannot load {artifact.path}: {exc}") from exc
    input_details = runner.get_input_details()
    output_details = runner.get_output_details()
    count = len(next(iter(inputs.values())))
    results: dict[str, list[np.ndarray]] = {name: [] for name in output_details}
    for index in range(count):  # batch of one: converted models often fix the batch dimension
        feed = {}
        for name, detail in input_details.items():
            sample = inputs[name][index : index + 1]
            feed[name] = quantize_input(sample, detail) if detail["dtype"] != sample.dtype and np.issubdtype(detail["dtype"], np.integer) else sample
        try:
            outputs = runner(**feed)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeFailure(f"LiteRT failed to run {artifact.path}: {exc}") from exc
        for name, value in outputs.items():
            detail = output_details[name]
            results[name].append(dequantize_output(value, detail) if np.issubdtype(detail["dtype"], np.integer) else value)
    return {name: np.concatenate(values) for name, values in results.items()}
