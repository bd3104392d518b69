"""Magnitude pruning (tensorflow-model-optimization), fine-tuned by distillation on unlabeled calibration data.

The student is the pruned copy of the model; the teacher is the original SavedModel, whose outputs on
the calibration inputs are the training targets, so no labels are needed. Pruning follows a polynomial
schedule up to the asked sparsity, the wrappers are stripped, and the result is exported as a new
canonical SavedModel that every converter then takes like any other model.
"""

from __future__ import annotations

import dataclasses
import gzip
from dataclasses import dataclass

import numpy as np

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import ConversionError, UsageError
from edgezoo.validate import metrics
from edgezoo.zoo.base import LoadedModel, read_signature, sha256_of_path, tf_keras_model

FINE_TUNE_STEPS = 300  # optimiser steps of distillation; the schedule reaches the sparsity at 60% of them
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class LayerSparsity:
    layer: str
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_json(self) -> dict:
        return {"layer": self.layer, "weights": self.weights, "zeros": self.zeros, "sparsity": self.sparsity}


@dataclass(frozen=True)
class PruneResult:
    model: LoadedModel  # the pruned model, a new canonical SavedModel
    original: LoadedModel
    requested_sparsity: float
    layers: tuple[LayerSparsity, ...]
    fine_tune: dict  # steps, epochs, samples, distillation loss at start and end
    effect: dict  # pruned against original on the held-out inputs: metrics per output (and accuracy where labels exist)

    @property
    def reached_sparsity(self) -> float:
        weights = sum(layer.weights for layer in self.layers)
        return sum(layer.zeros for layer in self.layers) / weights if weights else 0.0

    def to_json(self, artifact=None) -> dict:
        data = {
            "requested_sparsity": self.requested_sparsity,
            "reached_sparsity": self.reached_sparsity,
            "layers": [layer.to_json() for layer in self.layers],
            "fine_tune": self.fine_tune,
            "against_original": self.effect,
            "pruned_model_sha256": self.model.sha256,
        }
        if artifact is not None:
            data["artifact_bytes"] = artifact.size_bytes
            data["artifact_gzip_bytes"] = gzip_size(artifact.files)
        return data


def gzip_size(files) -> int:
    """Size of the artifact's files after gzip: zeroed weights show up here, not in the raw size."""
    return sum(len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)) for path in files)


def _load_keras(model: LoadedModel):
    keras = _tf.tf_keras()
    loaded = tf_keras_model(model, "--prune", "Pruning works on bundled models, keras:NAME, .h5 files and SavedModels written by "
                          "tf-keras' model.save(); convert this source without --prune.")
    if not isinstance(loaded, keras.Model) or not (isinstance(loaded, keras.Sequential) or getattr(loaded, "_is_graph_network", False)):
        raise UsageError(
            f"--prune needs a Keras model (Sequential or functional); {model.source} loads as {type(loaded).__name__}, "
            "not as one (a plain SavedModel, or a subclassed model). Convert it without --prune."
        )
    return loaded


def _ordered(keras_names: list[str], signature_names: list[str], arrays: dict[str, np.ndarray], what: str, source: str):
    """Arrays in the Keras model's own input or output order (pruning wrappers rename outputs, so not by name)."""
    if sorted(keras_names) == sorted(signature_names):
        return [arrays[name] for name in keras_names]
    if len(keras_names) == 1 and len(signature_names) == 1:
        return [arrays[signature_names[0]]]
    raise ConversionError(
        f"cannot match the Keras {what} of {source} ({', '.join(keras_names)}) to its serving signature's "
        f"({', '.join(signature_names)}); pruning needs them to agree."
    )


def _distillation_loss(keras, model: LoadedModel):
    """KL divergence for a classifier's probabilities, mean squared error for anything else."""
    return keras.losses.KLDivergence() if model.is_classifier else keras.losses.MeanSquaredError()


def _schedule(tfmot, sparsity: float, total_steps: int):
    end_step = max(1, int(total_steps * 0.6))
    frequency = max(1, end_step // 20)
    end_step = max(frequency, end_step // frequency * frequency)  # the last update lands exactly on end_step
    return tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end_step, frequency=frequency)


def prune(model: LoadedModel, data, sparsity: float, *, seed: int = 0, feedback_step=None) -> PruneResult:
    """Prune `model` to `sparsity` (share of prunable weights set to zero), distilled from the original on `data.calibration`."""
    from edgezoo.zoo.reference import run_reference

    keras = _tf.tf_keras()
    import tensorflow_model_optimization as tfmot

    keras.utils.set_random_seed(seed)
    student = _load_keras(model)
    input_names = [spec.name for spec in model.inputs]
    output_names = [spec.name for spec in model.outputs]
    inputs = _ordered(list(student.input_names), input_names, data.calibration, "inputs", model.source)
    teacher = _ordered(list(student.output_names), output_names, run_reference(model, data.calibration), "outputs", model.source)

    samples = data.num_calibration
    steps_per_epoch = max(1, int(np.ceil(samples / BATCH_SIZE)))
    epochs = max(3, int(np.ceil(FINE_TUNE_STEPS / steps_per_epoch)))
    try:
        with _tf.quiet_native_output():
            wrapped = tfmot.sparsity.keras.prune_low_magnitude(student, pruning_schedule=_schedule(tfmot, sparsity, steps_per_epoch * epochs))
            wrapped.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=_distillation_loss(keras, model))
            history = wrapped.fit(
                inputs, teacher, epochs=epochs, batch_size=BATCH_SIZE, shuffle=True, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
            )
            pruned_weights = [(layer.layer.name, [w.name for w, _, _ in layer.pruning_vars]) for layer in wrapped.layers if getattr(layer, "pruning_vars", None)]
            stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ConversionError(f"pruning {model.name} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not pruned_weights:
        raise UsageError(f"{model.name} has no layers that magnitude pruning supports (Dense, Conv...); convert it without --prune.")

    layers = tuple(_layer_sparsity(stripped, name, weight_names) for name, weight_names in pruned_weights)
    pruned_dir = scratch_dir("pruned-") / "saved_model"
    with _tf.quiet_native_output():
        stripped.save(pruned_dir, save_format="tf", include_optimizer=False)
    inputs_spec, outputs_spec = read_signature(pruned_dir)
    if inputs_spec != model.inputs or outputs_spec != model.outputs:
        raise ConversionError(
            f"the pruned {model.name} no longer has the original's signature ({inputs_spec} -> {outputs_spec}, "
            f"was {model.inputs} -> {model.outputs})."
        )
    pruned = dataclasses.replace(model, saved_model_dir=pruned_dir, sha256=sha256_of_path(pruned_dir))
    loss = history.history["loss"]
    fine_tune = {"method": "distillation from the original model", "samples": samples, "epochs": epochs,
                 "steps": steps_per_epoch * epochs, "loss": type(_distillation_loss(keras, model)).__name__,
                 "loss_first_epoch": float(loss[0]), "loss_last_epoch": float(loss[-1])}
    effect = _against_original(model, pruned, data, run_reference)
    return PruneResult(pruned, model, float(sparsity), layers, fine_tune, effect)


def _layer_sparsity(stripped, layer_name: str, weight_names: list[str]) -> LayerSparsity:
    weights = [w for w in stripped.get_layer(layer_name).weights if w.name in weight_names]
    values = [w.numpy() for w in weights]
    return LayerSparsity(layer_name, int(sum(v.size for v in values)), int(sum(v.size - np.count_nonzero(v) for v in values)))


def _against_original(original: LoadedModel, pruned: LoadedModel, data, run_reference) -> dict:
    """How much pruning itself changed the model, on the held-out inputs (parity then checks the conversion)."""
    before = run_reference(original, data.heldout)
    after = run_reference(pruned, data.heldout)
    classifier = original.is_classifier
    effect = {"num_samples": data.num_heldout, "outputs": {name: metrics.compare(before[name], after[name], classifier) for name in before}}
    if classifier and data.heldout_labels is not None and len(before) == 1:
        name = next(iter(before))
        effect["accuracy_original"] = float(np.mean(np.argmax(before[name], -1) == data.heldout_labels))
        effect["accuracy_pruned"] = float(np.mean(np.argmax(after[name], -1) == data.heldout_labels))
    return effect


def summary_line(section: dict) -> str:
    """One line for the CLI from a report's "pruning" section."""
    outputs = section["against_original"]["outputs"]
    agreement = [m.get("top1_agreement") for m in outputs.values() if m.get("top1_agreement") is not None]
    versus = f", top-1 agreement with the unpruned model {100 * min(agreement):.1f}%" if agreement else ""
    gzip_part = f", {section['artifact_gzip_bytes'] / 1024:.1f} KiB gzipped" if "artifact_gzip_bytes" in section else ""
    return f"  pruned to {100 * section['reached_sparsity']:.1f}% sparsity (asked {100 * section['requested_sparsity']:.0f}%){gzip_part}{versus}"
