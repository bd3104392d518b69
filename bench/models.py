"""The benchmark models as SavedModels on disk, so edgezoo and the official tools start from the same files.

digits-cnn (bundled, trained), MobileNetV2 224 and EfficientNetB0 224 (tf-keras applications, seeded
random weights: weights=None, because this machine cannot download ImageNet weights). Each comes with
a calibration .npz of model-ready inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgezoo import _tf
from edgezoo.calibration import from_model_data
from edgezoo.zoo import load

SEED = 0
CALIBRATION_SAMPLES = 32


def _write_calibration(path: Path, name: str, array: np.ndarray) -> None:
    np.savez(path, **{name: array.astype(np.float32)})


def _batchnorm_statistics_from(keras, model, images: np.ndarray) -> None:
    """Random weights with untouched batch-norm statistics answer every input nearly alike, and their int8
    model is degenerate (TensorFlow Lite Micro aborts on it). Statistics taken from one batch of inputs, as
    training would set them, make the outputs vary with the input the way a trained model's do."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the moving statistics become this batch's
    model(images, training=True)


def prepare(out: Path) -> dict[str, dict]:
    """name -> {"saved_model": path, "calibration": path, "input": name}; reuses what is already built."""
    out.mkdir(parents=True, exist_ok=True)
    models = {}

    digits = load("digits-cnn")
    digits_dir = out / "digits-cnn"
    if not (digits_dir / "saved_model.pb").exists():
        shutil.copytree(digits.saved_model_dir, digits_dir, dirs_exist_ok=True)
    data = from_model_data(digits)
    calibration = np.concatenate([data.calibration["image"], data.heldout["image"]])
    _write_calibration(out / "digits-cnn.npz", "image", calibration)
    models["digits-cnn"] = {"saved_model": digits_dir, "calibration": out / "digits-cnn.npz", "input": "image", "size": 8}

    keras = _tf.tf_keras()
    # (name, builder, the input range its preprocessing expects: MobileNet [-1, 1], EfficientNet raw 0..255)
    for name, factory, (low, high) in (
        ("mobilenet_v2", keras.applications.MobileNetV2, (-1.0, 1.0)),
        ("efficientnet_b0", keras.applications.EfficientNetB0, (0.0, 255.0)),
    ):
        rng = np.random.default_rng(SEED)
        images = rng.uniform(low, high, (CALIBRATION_SAMPLES, 224, 224, 3)).astype(np.float32)
        target = out / name
        if not (target / "saved_model.pb").exists():
            keras.utils.set_random_seed(SEED)
            inputs = keras.Input((224, 224, 3), name="image")
            model = factory(input_tensor=inputs, weights=None, classes=1000)
            _batchnorm_statistics_from(keras, model, images)
            with _tf.quiet_native_output():
                model.save(target, save_format="tf", include_optimizer=False)
        _write_calibration(out / f"{name}.npz", "image", images)
        models[name] = {"saved_model": target, "calibration": out / f"{name}.npz", "input": "image", "size": 224}
    return models
