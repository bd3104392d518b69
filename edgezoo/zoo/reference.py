"""The reference: the original model's serving signature in TensorFlow."""

from __future__ import annotations

import numpy as np

from edgezoo import _tf
from edgezoo.errors import CalibrationDataError
from edgezoo.zoo.base import LoadedModel

RUNTIME = "tensorflow"
# Sizes tried for dynamic dimensions (height, width, sequence length) that random samples must fill: 1 breaks most
# models (pooling and strided convolutions of a 1x1 image, a U-Net's skip concatenations), and 32 is the smallest
# size five stride-2 stages (a classifier backbone's) reduce to 1.
DYNAMIC_SIZES = (32, 64, 128, 224, 299, 1)


def _serving_function(model: LoadedModel):
    tf = _tf.tf()
    with _tf.quiet_native_output():
        return tf.saved_model.load(str(model.saved_model_dir)).signatures[model.signature_key]


def static_batch(model: LoadedModel) -> int | None:
    """The batch every input is fixed to (a model exported for batch 1), or None when the batch is dynamic."""
    batches = {spec.shape[0] for spec in model.inputs if spec.shape}
    return batches.pop() if len(batches) == 1 and None not in batches else None


def run_reference(model: LoadedModel, inputs: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
    tf = _tf.tf()
    function = _serving_function(model)
    fixed = static_batch(model)
    step = fixed or batch_size  # a model with a static batch takes exactly that many samples a call: the last is padded
    count = len(next(iter(inputs.values())))
    batches = []
    for start in range(0, count, step):
        taken = min(step, count - start)
        feed = {name: tf.constant(_padded(array[start : start + step], step if fixed else taken)) for name, array in inputs.items()}
        try:
            batches.append({name: value.numpy()[:taken] for name, value in function(**feed).items()})
        except (tf.errors.InvalidArgumentError, ValueError) as exc:  # inputs of a size the graph cannot take (odd sizes, tiny images)
            shapes = ", ".join(f"{name} {list(array.shape[1:])}" for name, array in inputs.items())
            raise CalibrationDataError(
                f"the original {model.name} cannot run on inputs with samples of shape {shapes}: {type(exc).__name__}: "
                f"{error_summary(exc)}. Give inputs of a size the model takes (--calibration, or --input-shape for random ones)."
            ) from exc
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}


def dynamic_size_that_runs(model: LoadedModel, shapes: dict[str, tuple[int, ...]] | None = None) -> int | None:
    """The first of DYNAMIC_SIZES at which the original runs a random sample whose unsized dynamic dimensions (not given
    in `shapes`, batch first) all take that size; None when no input has such a dimension or no size runs."""
    shapes = shapes or {}
    open_inputs = [spec for spec in model.inputs if spec.name not in shapes and None in spec.shape[1:]]
    if not open_inputs:
        return None
    tf = _tf.tf()
    function = _serving_function(model)
    batch = static_batch(model) or 1
    rng = np.random.default_rng(0)
    for size in DYNAMIC_SIZES:
        feed = {}
        for spec in model.inputs:
            shape = tuple(shapes[spec.name][1:]) if spec.name in shapes else tuple(size if d is None else d for d in spec.shape[1:])
            array = rng.standard_normal((batch, *shape)) if np.dtype(spec.dtype).kind == "f" else np.zeros((batch, *shape))
            feed[spec.name] = tf.constant(array.astype(spec.dtype))
        try:
            function(**feed)
            return size
        except (tf.errors.InvalidArgumentError, ValueError):
            continue
    return None


def error_summary(exc: Exception) -> str:
    """The line of a TensorFlow error that says what went wrong: its message ends with it, after "Graph execution error:"
    and the Python stack of the node, and before the node's name in brackets."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("File ", "Graph execution error", "Detected at node"))
              and "[[{{node" not in line and not line.startswith("[Op:")]
    return (useful[-1] if useful else (lines[0] if lines else ""))[:300]


def _padded(array: np.ndarray, size: int) -> np.ndarray:
    if len(array) >= size:
        return array
    return np.concatenate([array, np.repeat(array[-1:], size - len(array), axis=0)])
