"""A small Keras 2-era grayscale classifier saved as a legacy HDF5 file with a `.hdf5` suffix (model_config in the file's
attributes, as tf-keras' `model.save("x.hdf5")` writes it), for the zoo and metadata tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHAPE = (12, 12, 1)


def make_gray_hdf5(folder: Path, name: str = "emotion_model.hdf5") -> Path:
    """A seeded Conv2D + Dense softmax over one grayscale channel; its outputs vary with the input."""
    import h5py

    from edgezoo import _tf

    keras = _tf.tf_keras()
    keras.utils.set_random_seed(7)
    net = keras.Sequential([keras.Input(SHAPE, name="face"), keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                            keras.layers.GlobalAveragePooling2D(name="gap"), keras.layers.Dense(3, activation="softmax", name="emotion")])
    kernel, bias = net.layers[-1].get_weights()
    net.layers[-1].set_weights([kernel * 30.0, bias])  # decisive: a random net's softmax is nearly constant otherwise
    path = Path(folder) / name
    net.save(path)
    with h5py.File(path, "r") as handle:
        assert json.loads(handle.attrs["model_config"])["class_name"] == "Sequential"  # the legacy format, not a .keras zip
    return path


def gray_images(count: int = 24) -> np.ndarray:
    rng = np.random.default_rng(3)  # images of different brightness and contrast, so the scores differ between them
    return (rng.uniform(0.0, 1.0, (count, 1, 1, 1)) * rng.uniform(0.0, 1.0, (count, *SHAPE)) ** rng.uniform(0.3, 3.0, (count, 1, 1, 1))).astype(np.float32)
