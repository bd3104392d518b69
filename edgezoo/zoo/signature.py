"""A SavedModel's serving signature traced for fixed input shapes, in memory: what a TFLite conversion reads instead
of a resaved SavedModel (targets/static_shape.fix_shapes makes one; formats/tflite/frozen.py reads it)."""

from __future__ import annotations

import dataclasses

from edgezoo import _tf
from edgezoo.zoo.base import LoadedModel, TensorSpec

Shape = tuple[int | None, ...]


def traced_signature(model: LoadedModel, shapes: dict[str, Shape]):
    """(the loaded SavedModel, its serving signature traced for inputs of these shapes; the others as they are)."""
    tf = _tf.tf()
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(model.saved_model_dir))
        signature = loaded.signatures[model.signature_key]
        specs = {spec.name: tf.TensorSpec(shapes.get(spec.name, spec.shape), spec.dtype, name=spec.name) for spec in model.inputs}
        concrete = tf.function(lambda **inputs: signature(**inputs)).get_concrete_function(**specs)
    return loaded, concrete


class FixedSignature:
    """A SavedModel's serving signature traced for fixed input shapes, kept in memory instead of saved as a new SavedModel:
    what a TFLite conversion reads (TFLiteConverter.from_concrete_functions, as a hand-written script fixes the batch).
    Traced once per process, on first use; a pickled copy (a job's package) leaves the trace behind and traces again."""

    def __init__(self, model: LoadedModel, shapes: dict[str, Shape]):
        self.saved_model_dir = model.saved_model_dir
        self.signature_key = model.signature_key
        self.inputs = tuple(dataclasses.replace(spec, shape=tuple(shapes.get(spec.name, spec.shape))) for spec in model.inputs)
        self._traced = None

    def traced(self):
        """(the loaded SavedModel, which owns the variables; the concrete function for the fixed shapes)."""
        if self._traced is None:
            source = LoadedModel(name="", source="", saved_model_dir=self.saved_model_dir, inputs=self.inputs, outputs=(), sha256="",
                                 signature_key=self.signature_key)
            self._traced = traced_signature(source, {spec.name: spec.shape for spec in self.inputs})
        return self._traced

    def outputs(self) -> tuple[TensorSpec, ...]:
        """The signature's outputs for these inputs, in sorted name order (as read_signature gives them)."""
        _, concrete = self.traced()
        return tuple(TensorSpec(name, tuple(spec.shape.as_list()), spec.dtype.as_numpy_dtype().dtype.name)
                     for name, spec in sorted(concrete.structured_outputs.items()))

    def __getstate__(self):
        return {**self.__dict__, "_traced": None}
