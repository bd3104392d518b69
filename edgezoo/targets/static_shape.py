"""Static shapes for devices without dynamic ones: the batch dimension fixed before conversion.

A converter given a SavedModel with a dynamic batch keeps it dynamic (shape_signature -1) and emits
SHAPE/STRIDED_SLICE/PACK ops that compute it at run time (MobileNet's Reshape layers): ops, arena
and a dynamic shape that TensorFlow Lite Micro, which plans all memory ahead, should not have to
handle. Re-tracing the serving signature with a fixed input spec into a new SavedModel removes both.
"""

from __future__ import annotations

import dataclasses

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import TargetConstraintError
from edgezoo.zoo.base import LoadedModel, read_signature


def _fixed_shapes(model: LoadedModel, batch: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for spec in model.inputs:
        shape = spec.shape
        if not shape:
            raise TargetConstraintError(f"input '{spec.name}' of {model.name} is a scalar; a fixed batch needs a batch dimension.")
        if shape[0] is not None and shape[0] != batch:
            raise TargetConstraintError(
                f"input '{spec.name}' of {model.name} has a static batch of {shape[0]}, but the target needs {batch}. "
                "Re-export the model with a dynamic or matching batch dimension."
            )
        if any(d is None for d in shape[1:]):
            shown = ", ".join("?" if d is None else str(d) for d in shape)
            raise TargetConstraintError(
                f"input '{spec.name}' of {model.name} has dynamic dimensions [{shown}] besides the batch; the target needs "
                "static shapes. Re-export the model with a fixed input size (e.g. keras:NAME at a given input_shape)."
            )
        shapes[spec.name] = (batch, *shape[1:])
    return shapes


def traced_signature(model: LoadedModel, batch: int):
    """(the loaded SavedModel, its serving signature traced for inputs with this batch size)."""
    shapes = _fixed_shapes(model, batch)
    tf = _tf.tf()
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(model.saved_model_dir))
        signature = loaded.signatures[model.signature_key]
        specs = {spec.name: tf.TensorSpec(shapes[spec.name], spec.dtype, name=spec.name) for spec in model.inputs}
        concrete = tf.function(lambda **inputs: signature(**inputs)).get_concrete_function(**specs)
    return loaded, concrete


def fix_batch(model: LoadedModel, batch: int) -> LoadedModel:
    """The same model as a new SavedModel whose inputs and outputs have this static batch size."""
    if all(spec.shape[:1] == (batch,) for spec in model.inputs) and all(spec.shape[:1] == (batch,) for spec in model.outputs):
        return model
    tf = _tf.tf()
    loaded, concrete = traced_signature(model, batch)  # `loaded` owns the variables until they are saved
    holder = tf.Module()
    holder.weights = list(concrete.variables)  # only what the signature reads: far quicker than the whole object graph
    target = scratch_dir("fixed-batch-") / "saved_model"
    try:
        with _tf.quiet_native_output():
            tf.saved_model.save(holder, str(target), signatures={model.signature_key: concrete})
    except Exception as exc:
        raise TargetConstraintError(f"cannot fix the batch of {model.name} to {batch}: {type(exc).__name__}: {exc}") from exc
    inputs, outputs = read_signature(target, model.signature_key)
    return dataclasses.replace(model, saved_model_dir=target, inputs=inputs, outputs=outputs)
