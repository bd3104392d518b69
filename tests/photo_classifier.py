"""A Keras application that classifies real photographs: MobileNetV2 (alpha 0.35, 64x64) trained from random weights
for a few epochs on crops of four photographs that scikit-image ships (astronaut, chelsea the cat, coffee, rocket),
its batch-norm statistics then taken from a batch of crops. Its softmax is confident and differs from photo to
photo, so a consumer that normalises the pixels wrongly, or loses the labels, gets a different answer.

The photographs come from the MediaPipe environment (scikit-image is installed there, not in the main one).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

PHOTOS = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}  # label -> skimage.data name
SIZE = 64
TRAIN_CROPS, CALIBRATION_CROPS, EPOCHS = 256, 40, 4


def export_photos(python: Path, path: Path) -> dict[str, np.ndarray]:
    """The photographs as uint8 RGB arrays, read by scikit-image in the MediaPipe environment."""
    script = ("import sys, numpy as np, skimage.data as d; "
              f"np.savez(sys.argv[1], **{{label: getattr(d, name)() for label, name in {json.dumps(PHOTOS)}.items()}})")
    subprocess.run([str(python), "-c", script, str(path)], check=True, timeout=120, capture_output=True)
    with np.load(path) as data:
        return {label: data[label] for label in PHOTOS}


def crops(photos: dict[str, np.ndarray], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` random square crops (half to all of the short side), resized to SIZE x SIZE, half of them mirrored."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = sorted(photos)
    images, classes = [], []
    for index in range(count):
        label = index % len(labels)
        photo = photos[labels[label]]
        height, width = photo.shape[:2]
        side = int(rng.uniform(0.5, 1.0) * min(height, width))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = np.asarray(Image.fromarray(photo[top : top + side, left : left + side]).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
        images.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
        classes.append(label)
    return np.stack(images), np.array(classes)


def test_images(photos: dict[str, np.ndarray]) -> np.ndarray:
    """The middle of each photograph (a square of 0.8 of its short side), resized to SIZE x SIZE: the test images."""
    from PIL import Image

    images = []
    for label in sorted(photos):
        photo = photos[label]
        height, width = photo.shape[:2]
        side = int(0.8 * min(height, width))
        top, left = (height - side) // 2, (width - side) // 2
        images.append(np.asarray(Image.fromarray(photo[top : top + side, left : left + side]).resize((SIZE, SIZE), Image.Resampling.BILINEAR)))
    return np.stack(images)


def build(photos: dict[str, np.ndarray], folder: Path) -> str:
    """Weights and labels files in `folder`, and a folder of calibration crops; returns the keras: source string."""
    from PIL import Image

    from edgezoo import _tf

    keras = _tf.tf_keras()
    folder.mkdir(parents=True, exist_ok=True)
    train, classes = crops(photos, TRAIN_CROPS, seed=0)
    scaled = train.astype(np.float32) / 127.5 - 1  # MobileNet's preprocessing: x / 127.5 - 1
    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=0.35, weights=None, classes=len(photos))
    network.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    network.fit(scaled, classes, batch_size=32, epochs=EPOCHS, verbose=0)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # a few dozen steps leave the moving statistics near their start: take them from a batch
    network(scaled[:128], training=True)
    network.save_weights(folder / "weights.h5")
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in sorted(photos)))
    calibration = folder / "calibration"
    calibration.mkdir(exist_ok=True)
    for index, crop in enumerate(crops(photos, CALIBRATION_CROPS, seed=1)[0]):
        Image.fromarray(crop).save(calibration / f"crop_{index:03d}.png")
    return (f"keras:MobileNetV2?alpha=0.35&input_size={SIZE}&classes={len(photos)}"
            f"&weights={folder / 'weights.h5'}&labels={folder / 'labels.txt'}")
