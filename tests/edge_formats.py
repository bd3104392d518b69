"""Helpers for the ONNX and TF.js tests: small SavedModels built in the test, conversion and parity in one call."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

import edgezoo
from edgezoo.formats import converter_for
from edgezoo.formats.base import Artifact, ConversionRequest, FormatOptions, Quantization
from edgezoo.targets import resolve_profile
from edgezoo.validate import ParityReport, check_parity
from edgezoo.zoo.reference import run_reference

# The built-in profile whose tolerances each runtime is held to.
PROFILE_OF_RUNTIME = {"onnxruntime": "onnx", "tfjs-node": "browser", "tfjs-browser": "browser"}


def convert(model, format_name: str, workdir: Path, quantization=Quantization.FLOAT32, options: FormatOptions | None = None) -> Artifact:
    workdir.mkdir(parents=True, exist_ok=True)
    request = ConversionRequest(quantization=Quantization(quantization), format_options=options)
    return converter_for(format_name).convert(model, request, workdir)


_REFERENCES: dict[tuple, dict[str, np.ndarray]] = {}


def reference(model, inputs: dict) -> dict[str, np.ndarray]:
    """The original's outputs in TensorFlow, computed once per model and inputs (MobileNet takes seconds)."""
    key = (str(model.saved_model_dir), *(hashlib.sha256(inputs[name].tobytes()).hexdigest() for name in sorted(inputs)))
    if key not in _REFERENCES:
        _REFERENCES[key] = run_reference(model, inputs)
    return _REFERENCES[key]


def parity(artifact: Artifact, runtime: str, model, inputs: dict, *, classifier: bool, quantization=None) -> ParityReport:
    tolerance = resolve_profile(PROFILE_OF_RUNTIME[runtime]).tolerance_for(Quantization(quantization or artifact.quantization))
    return check_parity(artifact, runtime, inputs, reference(model, inputs), classifier=classifier, tolerance=tolerance)


def copy_artifact(artifact: Artifact, folder: Path) -> Artifact:
    """The artifact's files copied into a folder of their own, to be broken there."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for file in artifact.files:
        (folder / file.name).write_bytes(file.read_bytes())
        files.append(folder / file.name)
    return dataclasses.replace(artifact, path=folder / artifact.path.name, files=tuple(files))


def save_module(module, folder: Path, input_spec) -> "edgezoo.zoo.LoadedModel":
    """A tf.Module whose `serve` method becomes the serving signature, saved and loaded as users load models."""
    from edgezoo import _tf

    tf = _tf.tf()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function(input_spec)})
    return edgezoo.load(str(folder))


def two_heads_model(folder: Path, batch: int | None = None):
    """Two outputs of the same shape whose names sort opposite to the graph's order: only name mapping gets them right."""
    from edgezoo import _tf

    tf = _tf.tf()

    class TwoHeads(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))

        @tf.function
        def serve(self, features):
            hidden = tf.matmul(features, self.kernel)
            return {"zeta": tf.tanh(hidden), "alpha": 2.0 * hidden + 1.0}

    return save_module(TwoHeads(), folder, tf.TensorSpec([batch, 4], tf.float32, name="features"))


def two_heads_parity(format_name: str, runtime: str, folder: Path, batch: int | None = None, count: int = 20):
    """(artifact, parity report) of the two-heads model converted to a format and run on a runtime."""
    model = two_heads_model(folder / "two_heads", batch)
    artifact = convert(model, format_name, folder / format_name)
    return artifact, parity(artifact, runtime, model, features(count), classifier=False)


def assert_caught(report: ParityReport) -> None:
    """A tampered artifact that still runs: parity must fail on the numbers, not on a crash."""
    assert not report.passed and report.error is None
    assert any("cosine" in v or "top1" in v for v in report.outputs[0].violations), report.summary()


def tampered_tfjs_copy(artifact: Artifact, folder: Path) -> Artifact:
    from tests.tamper import tamper_tfjs_weights

    tampered = copy_artifact(artifact, folder)
    tamper_tfjs_weights(tampered.path)
    return tampered


def log_gamma_model(folder: Path):
    """A model with a layer computing lgamma, which neither tf2onnx nor TF.js implements."""
    from edgezoo import _tf

    tf = _tf.tf()

    class LogGammaNet(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(np.ones((4, 2), np.float32))

        @tf.function
        def serve(self, features):
            with tf.name_scope("dense"):
                hidden = tf.nn.softplus(tf.matmul(features, self.kernel)) + 1.0
            with tf.name_scope("log_gamma"):
                return {"scores": tf.math.lgamma(hidden)}

    return save_module(LogGammaNet(), folder, tf.TensorSpec([None, 4], tf.float32, name="features"))


def features(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"features": np.random.default_rng(seed).normal(size=(count, 4)).astype(np.float32)}


def build_mobilenet_v2(folder: Path):
    """MobileNetV2 (alpha 0.35, 96x96, untrained but seeded) whose softmax varies with the input.

    An untrained network's batch-norm statistics (mean 0, variance 1) shrink activations to nothing and
    the softmax comes out constant, proving nothing; so the statistics are set once from a batch of inputs.
    The serving signature is saved from a plain tf.Module: Keras' own SavedModel export traces every
    layer and takes ten times longer, for the same graph.
    """
    from edgezoo import _tf

    tf, keras = _tf.tf(), _tf.tf_keras()
    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)
    norms = [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become this one batch's statistics
    network(np.random.default_rng(1).uniform(-1, 1, (16, 96, 96, 3)).astype(np.float32), training=True)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = list(network.variables)

        @tf.function
        def serve(self, image):
            return {"predictions": network(image, training=False)}

    model = save_module(Serving(), folder, tf.TensorSpec([None, 96, 96, 3], tf.float32, name="image"))
    inputs = {"image": np.random.default_rng(2).uniform(-1, 1, (12, 96, 96, 3)).astype(np.float32)}
    return model, inputs
