"""Pruning by distillation: the bundled digits model pruned to 50% on calibration images (no labels),
converted like any other model, with parity checked against the pruned model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import edgezoo
from edgezoo.errors import UsageError
from tests.digit_images import write_digit_images
from tests.tamper import tamper_tflite_weights

SPARSITY = 0.5


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    """The same conversion (float32, so the weights stay readable) with and without --prune."""
    root = tmp_path_factory.mktemp("prune")
    write_digit_images(root / "images", 400)
    common = dict(targets=("phone",), quantize="float32", calibration=root / "images")
    pruned = edgezoo.convert(digits, out_dir=root / "pruned", prune=SPARSITY, **common)
    plain = edgezoo.convert(digits, out_dir=root / "plain", **common)
    return pruned, plain, root / "images"


def largest_float_weights(artifact_path) -> np.ndarray:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(artifact_path))
    buffers = {t.buffer for sub in model.subgraphs for t in sub.tensors if t.type == 0}  # FLOAT32
    largest = max((b for b in buffers if model.buffers[b].data is not None), key=lambda b: len(model.buffers[b].data))
    return np.frombuffer(bytes(model.buffers[largest].data), dtype=np.float32)


def test_pruning_reaches_the_asked_sparsity(runs):
    pruned, _, _ = runs
    section = pruned.targets[0].report["pruning"]
    assert section["requested_sparsity"] == SPARSITY
    assert abs(section["reached_sparsity"] - SPARSITY) <= 0.01
    assert {layer["layer"] for layer in section["layers"]} == {"conv1", "conv2", "dense", "logits"}
    for layer in section["layers"]:
        assert abs(layer["sparsity"] - SPARSITY) <= 0.01, layer
    # The zeros are in the converted artifact, not only in the Keras model: the dense kernel (32768 weights).
    dense = largest_float_weights(pruned.targets[0].artifact.path)
    assert dense.size == 32768 and abs(np.mean(dense == 0) - SPARSITY) <= 0.01
    assert np.mean(largest_float_weights(runs[1].targets[0].artifact.path) == 0) < 0.01


def test_pruned_artifact_gzips_smaller(runs):
    from edgezoo.quantize.prune import gzip_size

    pruned, plain, _ = runs
    section = pruned.targets[0].report["pruning"]
    assert section["artifact_bytes"] == pruned.targets[0].artifact.size_bytes
    assert section["artifact_gzip_bytes"] == gzip_size(pruned.targets[0].artifact.files)
    assert section["artifact_gzip_bytes"] < 0.8 * gzip_size(plain.targets[0].artifact.files)


def test_parity_is_checked_after_pruning(runs, digits):
    from edgezoo.calibration import load_calibration
    from edgezoo.options import ConvertOptions
    from edgezoo.targets import resolve_profile
    from edgezoo.validate import check_parity
    from edgezoo.zoo.reference import run_reference

    pruned, _, images = runs
    target = pruned.targets[0]
    assert target.passed and target.report["parity"]["num_samples"] > 0
    assert pruned.model.sha256 != digits.sha256  # the conversion read the pruned SavedModel
    effect = target.report["pruning"]["against_original"]
    assert effect["outputs"]["probabilities"]["top1_agreement"] >= 0.9  # distillation kept the original's answers
    assert target.report["pruning"]["fine_tune"]["loss_last_epoch"] < target.report["pruning"]["fine_tune"]["loss_first_epoch"]
    # The same held-out inputs again (seeded split), and a tampered copy of the artifact is caught.
    data = load_calibration(images, digits, ConvertOptions(calibration=images).calibration_settings())
    reference = run_reference(pruned.model, data.heldout)
    tolerance = resolve_profile("phone").tolerance_for(target.artifact.quantization)
    assert check_parity(target.artifact, "litert", data.heldout, reference, classifier=True, tolerance=tolerance).passed
    broken_dir = target.output_dir.parent / "tampered"
    shutil.copytree(target.output_dir, broken_dir)
    broken = target.artifact.relocated(target.output_dir, broken_dir)
    tamper_tflite_weights(broken.path)
    assert not check_parity(broken, "litert", data.heldout, reference, classifier=True, tolerance=tolerance).passed


def test_prune_refuses_a_model_that_is_not_keras(tmp_path):
    from edgezoo import _tf

    tf = _tf.tf()

    class Scale(tf.Module):
        def __init__(self):
            self.weight = tf.Variable(tf.ones([4, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(x, self.weight)}

    module = Scale()
    tf.saved_model.save(module, str(tmp_path / "plain"), signatures={"serving_default": module.__call__})
    with pytest.raises(UsageError, match="--prune needs a Keras model"):
        edgezoo.convert(str(tmp_path / "plain"), targets=("phone",), prune=0.5, out_dir=tmp_path / "out")


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 1.5])
def test_prune_sparsity_out_of_range(sparsity):
    with pytest.raises(UsageError, match="between 0 and 1"):
        edgezoo.ConvertOptions(prune=sparsity)
