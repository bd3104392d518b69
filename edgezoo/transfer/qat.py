"""--qat: quantisation-aware training (tensorflow-model-optimization) of the trained classifier, for full-integer targets.

tfmot quantises flat Sequential or functional models only, so the classifier (whose backbone is a nested model) is
first rebuilt as one flat graph over the same layers; every layer tfmot's default 8-bit scheme supports is annotated
(the preprocessing layers are not: the converter calibrates them from the training split). The quantised model then
trains a few epochs at the fine-tuning learning rate, with early stopping on validation loss and the best weights
restored, so the int8 model learns around its own rounding.
"""

from __future__ import annotations

from edgezoo import _tf
from edgezoo.errors import UsageError
from edgezoo.transfer.train import INPUT_NAME, best_weights


def flatten(model):
    """The functional model with its nested functional models inlined, layer objects (and weights) shared."""
    keras = _tf.tf_keras()
    tf = _tf.tf()
    from tf_keras.src.engine.keras_tensor import KerasTensor

    def call(inner, tensor):
        # The functional graph replayed node by node, depth first to last, as tf-keras' own _run_internal_graph does.
        tensors = {str(id(inner.inputs[0])): tensor}
        for depth in sorted(inner._nodes_by_depth, reverse=True):
            for node in inner._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                args, kwargs = tf.nest.map_structure(lambda t: tensors[str(id(t))] if isinstance(t, KerasTensor) else t,
                                                     (node.call_args, node.call_kwargs))
                nested = isinstance(node.layer, keras.Model) and getattr(node.layer, "_is_graph_network", False)
                outputs = call(node.layer, args[0]) if nested else node.layer(*args, **kwargs)
                for output_id, output in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                    tensors[output_id] = output
        return tensors[str(id(inner.outputs[0]))]

    raw = keras.Input(shape=model.input_shape[1:], name=INPUT_NAME)
    return keras.Model(raw, call(model, raw), name=f"{model.name}_flat")


def quantize(model):
    """The model with fake quantisation on every layer the default 8-bit scheme supports."""
    keras = _tf.tf_keras()
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    flat = flatten(model)

    def annotate(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        return tfmot.quantization.keras.quantize_annotate_layer(fresh) if registry.supports(layer) else fresh

    try:
        annotated = keras.models.clone_model(flat, clone_function=annotate)
        annotated.set_weights(flat.get_weights())
        with tfmot.quantization.keras.quantize_scope(), _tf.quiet_native_output():
            return tfmot.quantization.keras.quantize_apply(annotated)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(f"--qat: tensorflow-model-optimization cannot quantise this classifier: {exc}. Train without --qat "
                         "(post-training quantisation still applies to int8 targets).") from exc


def train_quantized(model, splits, options, training, report=None):
    """The quantisation-aware model trained on the training split; its epochs join the training history as phase 'qat'."""
    keras = _tf.tf_keras()
    from edgezoo.transfer.data import class_weights

    quantized = quantize(model)
    quantized.compile(optimizer=keras.optimizers.Adam(options.tuning_learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    callback = best_weights(options.patience, "qat", options.qat_epochs, training.history, training.best, report)
    weights = class_weights(splits.train.labels, len(splits.train.class_names))
    with _tf.quiet_native_output():
        quantized.fit(splits.train.pixels, splits.train.labels, validation_data=(splits.validation.pixels, splits.validation.labels),
                      epochs=options.qat_epochs, batch_size=options.batch_size, class_weight=weights, callbacks=[callback],
                      verbose=0, shuffle=True)
    return quantized
