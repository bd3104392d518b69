"""Train the bundled `digits-cnn` model, seeded, from the 8x8 digits data shipped in the package.

    .venv/bin/python scripts/train_digits_cnn.py

Writes edgezoo/zoo/bundled/digits_cnn/{saved_model/, splits.npz, model.json}. The same seed gives
the same splits; TensorFlow's op determinism keeps the weights repeatable on one machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgezoo import _tf

SEED = 1234
HERE = Path(__file__).resolve().parents[1] / "edgezoo" / "zoo" / "bundled" / "digits_cnn"
CALIBRATION_COUNT = 200
HELDOUT_COUNT = 360


def split_indices(count: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(count)
    heldout = np.sort(order[:HELDOUT_COUNT])
    calibration = np.sort(order[HELDOUT_COUNT : HELDOUT_COUNT + CALIBRATION_COUNT])
    train = np.sort(order[HELDOUT_COUNT + CALIBRATION_COUNT :])
    return {"train": train, "calibration": calibration, "heldout": heldout}


def build_model(keras):
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = keras.layers.Dense(10, name="logits")(x)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def main() -> None:
    tf = _tf.tf()
    keras = _tf.tf_keras()
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    data = np.load(HERE / "digits.npz")
    images = (data["images"].astype(np.float32) / 16.0)[..., None]
    labels = data["labels"].astype(np.int64)
    splits = split_indices(len(labels))

    model = build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[splits["train"]], labels[splits["train"]], epochs=40, batch_size=32, verbose=0, shuffle=True)
    _, accuracy = model.evaluate(images[splits["heldout"]], labels[splits["heldout"]], verbose=0)
    print(f"held-out accuracy: {accuracy:.4f}")

    saved = HERE / "saved_model"
    shutil.rmtree(saved, ignore_errors=True)
    model.save(saved, save_format="tf", include_optimizer=False)
    np.savez_compressed(HERE / "splits.npz", calibration=splits["calibration"], heldout=splits["heldout"])
    metadata = json.loads((HERE / "model.json").read_text()) if (HERE / "model.json").exists() else {}
    metadata["heldout_accuracy"] = round(float(accuracy), 4)
    metadata["parameters"] = int(model.count_params())  # `zoo list` reads it instead of loading the SavedModel
    (HERE / "model.json").write_text(json.dumps(metadata, indent=2) + "\n")


if __name__ == "__main__":
    main()
