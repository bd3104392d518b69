"""The reference: the original model's serving signature in TensorFlow."""

from __future__ import annotations

import numpy as np

from edgezoo import _tf
from edgezoo.errors import CalibrationDataError
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
        try:
            batches.append({name: value.numpy() for name, value in function(**feed).items()})
        except (tf.errors.InvalidArgumentError, ValueError) as exc:  # inputs of a size the graph cannot take (odd sizes, tiny images)
            shapes = ", ".join(f"{name} {list(array.shape[1:])}" for name, array in inputs.items())
            raise CalibrationDataError(
                f"the original {model.name} cannot run on inputs with samples of shape {shapes}: {type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}. Give inputs of a size the model takes "
                "(--calibration, or --input-shape for random ones)."
            ) from exc
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
