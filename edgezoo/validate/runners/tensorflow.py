"""The reference: the original model's serving signature in TensorFlow."""

from __future__ import annotations

import numpy as np

from edgezoo import _tf
from edgezoo.zoo.base import LoadedModel

RUNTIME = "tensorflow"


def run_reference(model: LoadedModel, inputs: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
    tf = _tf.tf()
    with _tf.quiet_native_output():
        function = tf.saved_model.load(str(model.saved_model_dir)).signatures[model.signature_key]
    count = len(next(iter(inputs.values())))
    batches = []
    for start in range(0, count, batch_size):
        feed = {name: tf.constant(array[start : start + batch_size]) for name, array in inputs.items()}
        batches.append({name: value.numpy() for name, value in function(**feed).items()})
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
