"""The original detector's outputs as each target's artifact should reproduce them.

ONNX and TF.js get the `serving_default` signature (NMS as ordinary ops), which TensorFlow runs: its outputs are the
reference. LiteRT and TFLM get `tflite_postprocess`, whose TFLite_Detection_PostProcess op TensorFlow cannot run
(the SavedModel returns zeros there); their reference is the original's pre-NMS heads (the `heads` signature, run in
TensorFlow) through postprocess.py, a numpy twin of the op's decoding and NMS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgezoo import _tf


def run_signature(saved_model_dir: Path, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A signature of a SavedModel in TensorFlow, one sample at a time (detector signatures take a batch of one)."""
    return run_signatures(saved_model_dir, (signature,), inputs)[signature]


def run_signatures(saved_model_dir: Path, signatures: tuple[str, ...], inputs: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Several signatures of one SavedModel (loaded once), each one sample at a time."""
    tf = _tf.tf()
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(saved_model_dir))
    count = len(next(iter(inputs.values())))
    results = {}
    for signature in signatures:
        function = loaded.signatures[signature]
        rows = [{name: value.numpy() for name, value in function(**{k: tf.constant(v[i : i + 1]) for k, v in inputs.items()}).items()}
                for i in range(count)]
        results[signature] = {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
    return results
