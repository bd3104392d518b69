"""LiteRT (ai_edge_litert), the TFLite runtime phones run, through the model's signature runner."""

from __future__ import annotations

import numpy as np

from edgezoo.formats.base import Artifact
from edgezoo.formats.tflite.convert import dequantize_output, quantize_input
from edgezoo.errors import RuntimeFailure
from edgezoo.formats.runtime import check_sample_shape, pad_batch

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
    for name, detail in input_details.items():
        check_sample_shape(artifact.path, name, detail["shape_signature"], inputs[name])
    # Dynamic dimensions take each sample's size (the signature runner resizes); a static batch is filled, else batch one.
    batches = {int(d["shape_signature"][0]) for d in input_details.values() if len(d["shape_signature"]) and d["shape_signature"][0] > 0}
    step = batches.pop() if len(batches) == 1 else 1
    count = len(next(iter(inputs.values())))
    results: dict[str, list[np.ndarray]] = {name: [] for name in output_details}
    for start in range(0, count, step):
        feed = {}
        for name, detail in input_details.items():
            sample = pad_batch(inputs[name][start : start + step], step)
            feed[name] = quantize_input(sample, detail) if detail["dtype"] != sample.dtype and np.issubdtype(detail["dtype"], np.integer) else sample
        if start:  # each sample from a clean state, as the original sees it (fused LSTMs keep state); a fresh one has it
            interpreter.reset_all_variables()
        try:
            outputs = runner(**feed)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeFailure(f"LiteRT failed to run {artifact.path}: {exc}") from exc
        taken = min(step, count - start)
        for name, value in outputs.items():
            detail = output_details[name]
            results[name].append((dequantize_output(value, detail) if np.issubdtype(detail["dtype"], np.integer) else value)[:taken])
    return {name: np.concatenate(values) for name, values in results.items()}
