"""A real consumer of edgezoo's TFLite metadata: MediaPipe Tasks' ImageClassifier, in its own environment
(.venv-mediapipe, as an app would have it, nothing of edgezoo), classifies photographs with edgezoo's float16 and
int8 phone artifacts of a Keras application, and names the classes from the labels packed in the file.

The bundled digits-cnn cannot be an ImageClassifier model: MediaPipe takes only RGB images (3 or 4 channels) into
uint8 or float32 inputs, and digits-cnn takes one grey channel (its int8 target also int8 inputs). Its metadata is
read here with MediaPipe's own metadata schema module instead, and the classifier's refusal is checked, word for word.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from tests import photo_classifier
from tests.conftest import REPO, side_environment

MEDIAPIPE_VENV = REPO / ".venv-mediapipe"
MEDIAPIPE_REQUIREMENTS = REPO / "requirements" / "mediapipe.txt"
APP = REPO / "tests" / "mediapipe_app.py"


@pytest.fixture(scope="session")
def mediapipe_python():
    """MediaPipe's Python; made once (by `make install`, or here on first use) and kept in .venv-mediapipe/."""
    return side_environment(MEDIAPIPE_VENV, MEDIAPIPE_REQUIREMENTS, "--no-deps")


def _app(python, *args):
    done = subprocess.run([str(python), str(APP), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, cwd="/")  # nothing of this repository reachable
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def classify(python, model, images, tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, images)
    return _app(python, "classify", model, path)


@pytest.fixture(scope="session")
def photos(mediapipe_python, tmp_path_factory):
    return photo_classifier.export_photos(mediapipe_python, tmp_path_factory.mktemp("photos") / "photos.npz")


@pytest.fixture(scope="session")
def photo_app(photos, tmp_path_factory):
    """The photo classifier converted by edgezoo for the phone, float16 and int8 (float input and output), in one run."""
    import edgezoo

    root = tmp_path_factory.mktemp("photo_app")
    source = photo_classifier.build(photos, root / "model")
    (root / "phone-int8-float-io.toml").write_text('extends = "phone"\nquantization = "int8"\n')
    result = edgezoo.convert(source, target=("phone", str(root / "phone-int8-float-io.toml")), out_dir=root / "out",
                             calibration=root / "model" / "calibration", max_calibration_samples=40)
    assert result.passed, [t.parity.summary() for t in result.targets]
    return result


@pytest.fixture(scope="session")
def tensorflow_answers(photo_app, photos):
    """The original's probabilities in TensorFlow on the middle of each photograph, preprocessed as the model records it."""
    from edgezoo.zoo.reference import run_reference

    model = photo_app.model
    images = photo_classifier.test_images(photos)
    return images, run_reference(model, {"image": model.preprocessing.apply(images)})["predictions"]


@pytest.mark.parametrize("quantization", ["float16", "int8"])
def test_mediapipe_classifies_photos_with_the_labels_and_the_top_class_of_tensorflow(
        mediapipe_python, photo_app, tensorflow_answers, tmp_path, quantization):
    target = next(t for t in photo_app.targets if t.artifact.quantization.value == quantization)
    images, expected = tensorflow_answers
    found = classify(mediapipe_python, target.artifact.path, images, tmp_path)
    labels = photo_app.model.labels
    assert labels == ("astronaut", "cat", "coffee", "rocket")
    for categories, probabilities in zip(found, expected):
        assert {c["name"] for c in categories} == set(labels)
        assert all(c["name"] == labels[c["index"]] for c in categories)  # names from labels.txt inside the .tflite
        assert categories[0]["index"] == int(np.argmax(probabilities)), (categories, probabilities)
        scores = np.array([next(c["score"] for c in categories if c["index"] == i) for i in range(len(labels))])
        np.testing.assert_allclose(scores, probabilities, atol=0.02 if quantization == "float16" else 0.2)  # int8: 0.09 seen (cat: 0.95 against 0.86)
    # The model tells the photographs apart: the test would catch a top class taken from the wrong pixels.
    assert [c[0]["name"] for c in found] == list(labels), found


def test_mediapipe_needs_the_metadata(mediapipe_python, photo_app, tensorflow_answers, tmp_path):
    """The same float16 model without its metadata is refused: what edgezoo's metadata gives the app is what it needs."""
    target = next(t for t in photo_app.targets if t.artifact.quantization.value == "float16")
    stripped = tmp_path / "stripped.tflite"
    stripped.write_bytes(_without_metadata(target.artifact.path.read_bytes()))
    refused = classify(mediapipe_python, stripped, tensorflow_answers[0], tmp_path)
    assert "requires specifying NormalizationOptions metadata" in refused["error"]


def _without_metadata(data: bytes) -> bytes:
    """The flatbuffer with its TFLITE_METADATA entry dropped and the associated files' zip cut off."""
    import flatbuffers

    from edgezoo.formats.tflite.flatbuffer import schema as tflite_schema

    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    model.metadata = [entry for entry in model.metadata if entry.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_mediapipe_reads_the_bundled_models_metadata_but_cannot_classify_grey_8x8_digits(mediapipe_python, every_runtime, digits, tmp_path):
    converted = {t.target: t for t in every_runtime.targets}
    phone = converted["phone-f32"]
    read = _app(mediapipe_python, "metadata", phone.artifact.path)
    assert read["name"] == "digits-cnn" and read["min_parser_version"] == "1.0.0"
    assert (read["input"], read["content_type"], read["color_space"], read["process_unit_type"]) == ("image", 2, 2, 1)  # image, GRAYSCALE, normalisation
    assert (read["mean"], read["std"], read["min"], read["max"]) == ([0.0], [255.0], [0.0], [1.0])  # pixels 0..255 -> 0..1 = (0..16) / 16
    assert (read["output"], read["labels_file"], read["labels_file_type"]) == ("probabilities", "labels.txt", 2)  # TENSOR_AXIS_LABELS
    assert read["labels"] == list(digits.labels)
    images = np.zeros((1, 8, 8, 3), np.uint8)
    assert classify(mediapipe_python, phone.artifact.path, images, tmp_path)["error"] == "Only RGB color space is supported for now."
    int8 = converted["phone-int8"].artifact.path  # int8 input and output
    assert "Requested one of these types: uint8/float32, got INT8" in classify(mediapipe_python, int8, images, tmp_path)["error"]
