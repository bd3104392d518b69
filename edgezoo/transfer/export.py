"""The trained classifier as a SavedModel a zoo source can load: one serving signature (raw pixels `image` in,
`probabilities` out), tf-keras' own metadata (so it can be a backbone again), and edgezoo.json (zoo/model_card.py)
with its labels, its raw-pixel preprocessing and the training record. labels.txt beside it for people and apps."""

from __future__ import annotations

from pathlib import Path

from edgezoo import _tf
from edgezoo.transfer.train import INPUT_NAME, OUTPUT_NAME
from edgezoo.zoo import model_card


def save(model, folder: Path, card: dict) -> Path:
    tf = _tf.tf()
    shape = (None, *model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)])
    def serve(image):
        return {OUTPUT_NAME: model(image, training=False)}

    with _tf.quiet_native_output():
        model.save(folder, save_format="tf", include_optimizer=False, signatures={"serving_default": serve})
    model_card.write(folder, card)
    return folder


def write_labels(path: Path, class_names) -> None:
    path.write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")
