"""Kinds of model the corpus lacked, found by converting ten models nobody here trained for (a sweep): integer outputs
(top-k class indices) and a uint8 image input, ONNX's --quantize auto, a Keras 3 .h5 with two inputs, a Keras 3 GRU, a
fully convolutional net with dynamic height and width given no data, and a SavedModel exported at batch 1.

Each model is tiny and built once; each runs the real converters and runtimes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgezoo
from edgezoo import _tf

def _keras3():
    _tf.tf()
    import keras  # Keras 3: what new users save with

    return keras


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tf = _tf.tf()
    keras = _keras3()
    layers = keras.layers
    folder = tmp_path_factory.mktemp("unseen")
    rng = np.random.default_rng(0)
    found = {}

    class Ranker(tf.Module):  # uint8 pixels in; softmax scores, top-3 values and their int32 class indices out
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.normal(size=(8 * 8 * 3, 10)).astype(np.float32) * 0.05)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.uint8, name="pixels")])
        def serve(self, pixels):
            logits = tf.matmul(tf.reshape(tf.cast(pixels, tf.float32) / 255.0, [-1, 8 * 8 * 3]), self.w)
            values, indices = tf.math.top_k(logits, k=3)
            return {"scores": tf.nn.softmax(logits), "top_values": values, "top_classes": indices}

    ranker = Ranker()
    found["ranker"] = folder / "uint8-topk"
    tf.saved_model.save(ranker, str(found["ranker"]), signatures={"serving_default": ranker.serve})

    image, features = keras.Input((10, 10, 1), name="image"), keras.Input((4,), name="features")
    a = layers.Flatten()(layers.MaxPooling2D()(layers.Conv2D(4, 3, activation="relu")(image)))
    joined = layers.Concatenate()([a, layers.Dense(4, activation="relu")(features)])
    two = keras.Model([image, features], [layers.Dense(3, activation="softmax")(joined), layers.Dense(1)(joined)])
    found["two_inputs_h5"] = folder / "two-inputs.h5"
    two.save(found["two_inputs_h5"])  # Keras 3 writes keras_version 3.x and InputLayer configs tf-keras cannot read

    sequence = keras.Input((12, 3))
    gru = keras.Model(sequence, layers.Dense(3, activation="softmax")(layers.GRU(4)(sequence)))
    found["gru_keras"] = folder / "gru.keras"
    gru.save(found["gru_keras"])

    pixels = keras.Input((None, None, 3))
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(pixels)
    up = layers.Conv2DTranspose(4, 2, strides=2, padding="same")(layers.MaxPooling2D()(c1))
    unet = keras.Model(pixels, layers.Conv2D(2, 1, activation="softmax")(layers.Concatenate()([up, c1])))
    found["unet"] = folder / "tiny-unet"
    unet.export(str(found["unet"]), verbose=False)

    vector = keras.Input((6,))
    dense = keras.Model(vector, layers.Dense(3)(layers.Dense(8, activation="tanh")(vector)))
    found["batch_one"] = folder / "batch-one"
    dense.export(str(found["batch_one"]), verbose=False, input_signature=[tf.TensorSpec([1, 6], tf.float32, name="x")])
    return found


def _passed(result, target: str):
    (done,) = [t for t in result.targets if t.target == target]
    assert done.failure is None and done.passed, (done.failure and done.failure.message, done.report and done.report["parity"])
    return done.report


def test_integer_outputs_and_a_uint8_input_are_compared_as_they_are(models, tmp_path):
    """top_classes has no quantisation scale: it was multiplied by a scale of 0 (every index 0) and failed parity at 0 dB;
    ai-edge-quantizer's I/O guard took the model's own uint8 input for a float input it had rewired, so the weights-only
    error and the per-layer effect were unavailable."""
    result = edgezoo.convert(str(models["ranker"]), targets=("phone", "phone-int8"), out_dir=tmp_path)
    outputs = {o["name"]: o for o in _passed(result, "phone")["parity"]["outputs"]}
    assert outputs["top_classes"]["max_abs_error"] == 0 and outputs["top_classes"]["passed"]

    from types import SimpleNamespace

    from edgezoo.formats.tflite.run_litert import run

    artifact_path = tmp_path / "uint8-topk" / "phone" / "model.tflite"
    pixels = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    got = run(SimpleNamespace(path=artifact_path), {"pixels": pixels})
    tf = _tf.tf()
    want = tf.saved_model.load(str(models["ranker"])).signatures["serving_default"](pixels=tf.constant(pixels))
    assert got["top_classes"].dtype.kind == "i" and np.array_equal(got["top_classes"], want["top_classes"].numpy())
    assert len({tuple(row) for row in got["top_classes"]}) > 1  # the indices vary with the input: the check can fail

    (int8,) = [t for t in result.targets if t.target == "phone-int8"]
    assert int8.failure is None
    assert "unavailable" not in json.dumps(int8.report.get("diagnostics", {}))
    assert int8.report["quantization_trace"].get("layers")  # the per-layer effect was measured


def test_onnx_auto_and_a_keras3_h5_with_two_inputs(models, tmp_path):
    """A Keras 3 .h5 was refused (tf-keras cannot read its InputLayer's batch_shape); ONNX's --quantize auto ended with
    KeyError 'float_fallback' (ONNX's int8 has no float fallback section)."""
    model = edgezoo.load(str(models["two_inputs_h5"]))
    assert sorted(spec.name for spec in model.inputs) == ["features", "image"]
    result = edgezoo.convert(str(models["two_inputs_h5"]), targets=("onnx",), quantize="auto", out_dir=tmp_path)
    report = _passed(result, "onnx")
    rows = {row["candidate"]: row for row in report["auto_quantization"]["candidates"]}
    assert "int8" in rows and rows["int8"]["size_bytes"]
    passing = [row for row in rows.values() if row["passed"]]
    kept = report["auto_quantization"]["kept"]
    assert kept == min(passing, key=lambda row: row["size_bytes"])["candidate"]
    assert report["artifact"]["size_bytes"] == rows[kept]["size_bytes"]


def test_a_keras3_gru_converts_for_the_phone_at_batch_one(models, tmp_path):
    """Keras 3's GRU exported with a dynamic batch keeps a TensorList of element shape [?, 4] that the TFLite converter
    cannot lower, and its SavedModel cannot be traced again; loaded from the .keras file it is exported at batch 1 too."""
    result = edgezoo.convert(str(models["gru_keras"]), targets=("phone",), out_dir=tmp_path)
    report = _passed(result, "phone")
    assert list(report["artifact"]["input_shapes"].values())[0][0] == 1
    assert "WHILE" in report["artifact"]["ops"]  # the recurrent loop is in the file, not unrolled away


def test_dynamic_height_and_width_get_a_size_the_model_runs_at(models, tmp_path):
    """With no data, random samples gave the U-Net 1x1 images, at which its skip concatenation cannot run (exit 2)."""
    result = edgezoo.convert(str(models["unet"]), targets=("onnx",), out_dir=tmp_path)
    report = _passed(result, "onnx")
    warning = next(w for w in report["calibration"]["warnings"] if "dynamic dimensions" in w)
    assert "size 32" in warning
    assert report["parity"]["outputs"][0]["snr_db"] > 60


def test_a_savedmodel_exported_at_batch_one_runs_its_reference_sample_by_sample(models, tmp_path):
    """The original took exactly one sample a call; the reference fed it the 13 held-out samples at once (exit 2)."""
    result = edgezoo.convert(str(models["batch_one"]), targets=("onnx",), out_dir=tmp_path)
    report = _passed(result, "onnx")
    assert report["parity"]["num_samples"] > 1
    assert report["parity"]["outputs"][0]["snr_db"] > 60
