"""Calibration data: image folders, .npy/.npz, TFRecord and iterables, sampling, statistics, and every bad-data error."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgezoo
from edgezoo.calibration import CalibrationSettings, load_calibration
from edgezoo.errors import CalibrationDataError
from tests.digit_images import digit_pixels, write_digit_images

SMALL = CalibrationSettings(max_samples=40, max_heldout=10)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration") / "images"
    write_digit_images(folder, 60)
    write_digit_images(folder / "more", 10, start=60, suffix=".bmp")
    write_digit_images(folder / "more", 10, start=70, suffix=".jpg")
    return folder


def digits_inputs(count: int) -> np.ndarray:
    """What the bundled preprocessing makes of the digits: [N, 8, 8, 1] floats in 0..1."""
    return (np.load("edgezoo/zoo/bundled/digits_cnn/digits.npz")["images"][:count, ..., None] / 16.0).astype(np.float32)


def count_matching(samples: np.ndarray, expected: np.ndarray, atol: float) -> int:
    """How many samples equal one of the expected inputs, within atol."""
    return sum(int(np.abs(expected - sample).max(axis=(1, 2, 3)).min() <= atol) for sample in samples)


# --- image folders ---------------------------------------------------------------------------------


def test_image_folder_is_read_recursively_and_preprocessed(digits, image_folder):
    data = load_calibration(image_folder, digits, CalibrationSettings(max_samples=1000))
    assert data.details["images_found"] == 80 and data.details["images_read"] == 80 and data.details["images_skipped"] == 0
    assert data.num_calibration + data.num_heldout == 80 and data.num_heldout == 16
    # 0..255 pixels through the model's preprocessing (pixel_max 16, scale 1/16) give the bundled 0..1 range.
    png_inputs = np.concatenate([data.calibration["image"], data.heldout["image"]])
    assert png_inputs.dtype == np.float32 and png_inputs.shape[1:] == (8, 8, 1)
    assert png_inputs.min() == 0.0 and png_inputs.max() == 1.0
    # Each PNG digit is one of the bundled digits, up to 8-bit rounding; the BMP and JPEG ones come from further on.
    assert count_matching(png_inputs, digits_inputs(60), atol=1 / 255 + 1e-6) == 60


def test_image_folder_sampling_is_seeded(digits, image_folder):
    first = load_calibration(image_folder, digits, SMALL)
    again = load_calibration(image_folder, digits, SMALL)
    other = load_calibration(image_folder, digits, CalibrationSettings(max_samples=40, max_heldout=10, seed=7))
    assert first.num_calibration == 40 and first.num_heldout == 10
    assert np.array_equal(first.calibration["image"], again.calibration["image"])
    assert np.array_equal(first.heldout["image"], again.heldout["image"])
    assert not np.array_equal(first.heldout["image"], other.heldout["image"])


def test_images_are_resized_to_the_model_input(digits, tmp_path):
    from PIL import Image

    big = np.kron(digit_pixels(12), np.ones((4, 4), np.uint8))  # 32x32 versions
    for index, pixels in enumerate(big):
        Image.fromarray(pixels).convert("RGB").save(tmp_path / f"{index}.png")  # colour files for a grey model
    data = load_calibration(tmp_path, digits, CalibrationSettings(resize="area"))
    resized = np.concatenate([data.calibration["image"], data.heldout["image"]])
    assert resized.shape == (12, 8, 8, 1)
    assert count_matching(resized, digits_inputs(12), atol=1 / 255 + 1e-6) == 12  # area resizing undoes the 4x blow-up


def test_corrupt_images_are_skipped_and_counted(digits, tmp_path):
    write_digit_images(tmp_path, 30)
    (tmp_path / "truncated.png").write_bytes((tmp_path / "digit_0" / "00000.png").read_bytes()[:20])
    (tmp_path / "digit_1" / "text.jpg").write_text("not a picture")
    data = load_calibration(tmp_path, digits)
    assert data.details["images_found"] == 32 and data.details["images_skipped"] == 2
    assert sorted(data.details["skipped"]) == ["digit_1/text.jpg", "truncated.png"]
    assert data.num_calibration + data.num_heldout == 30
    assert any("skipped 2 unreadable or corrupt" in warning for warning in data.warnings)


def test_all_corrupt_images_is_an_error(digits, tmp_path):
    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CalibrationDataError, match="none of the 3 image file"):
        load_calibration(tmp_path, digits)


def test_empty_folder_is_an_error(digits, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(CalibrationDataError, match="holds no images"):
        load_calibration(tmp_path, digits)


# --- arrays and their checks -----------------------------------------------------------------------


def test_npz_by_name_and_statistics(digits, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, image=digits_inputs(100), labels=np.zeros(100))
    data = load_calibration(path, digits, SMALL)
    stats = data.statistics()
    entry = stats["inputs"]["image"]
    assert entry["count"] == 40 and entry["min"] == 0.0 and entry["max"] == 1.0
    assert entry["mean"] == pytest.approx(float(data.calibration["image"].mean()), rel=1e-6)
    assert entry["range_settled"] is True and entry["range_change_last_tenth"] == 0.0
    assert stats["synthetic"] is False and stats["source"]["seed"] == 0
    assert any("labels" in warning and "ignored" in warning for warning in data.warnings)


def test_range_that_still_moves_is_reported(digits, tmp_path):
    ramp = (np.arange(200, dtype=np.float32)[:, None, None, None] * np.ones((1, 8, 8, 1), np.float32)) / 100
    np.save(tmp_path / "ramp.npy", ramp)
    data = load_calibration(tmp_path / "ramp.npy", digits, CalibrationSettings(max_samples=100))
    entry = data.statistics()["inputs"]["image"]
    assert entry["range_settled"] is False and entry["range_change_last_tenth"] > 0.01
    assert any("still moved" in warning for warning in data.warnings)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((10, 8, 8), np.float32), r"shape \(10, 8, 8\).*\[N, 8, 8, 1\]"),
        (np.zeros((10, 7, 8, 1), np.float32), r"shape \(10, 7, 8, 1\)"),
        (np.zeros((10, 8, 8, 1), np.uint8), "dtype uint8.*float32"),
        (np.zeros((0, 8, 8, 1), np.float32), "holds no samples"),
    ],
)
def test_wrong_shape_or_dtype_is_an_error(digits, tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(CalibrationDataError, match=message):
        load_calibration(tmp_path / "bad.npy", digits)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_an_error(digits, tmp_path, value):
    inputs = digits_inputs(20)
    inputs[13, 2, 3, 0] = value
    np.savez(tmp_path / "bad.npz", image=inputs)
    with pytest.raises(CalibrationDataError, match="NaN or Inf values in 1 sample.*sample 13"):
        load_calibration(tmp_path / "bad.npz", digits)


def test_missing_input_name_and_missing_file(digits, tmp_path):
    np.savez(tmp_path / "named.npz", pixels=digits_inputs(10), other=digits_inputs(10))
    with pytest.raises(CalibrationDataError, match="no array for the model input.*image.*has: other, pixels"):
        load_calibration(tmp_path / "named.npz", digits)
    with pytest.raises(CalibrationDataError, match="does not exist"):
        load_calibration(tmp_path / "missing.npz", digits)
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(CalibrationDataError, match="unsupported type"):
        load_calibration(tmp_path / "data.csv", digits)


def test_multi_input_arrays_match_by_name_or_position(digits):
    from dataclasses import replace

    from edgezoo.calibration.dataset import match_inputs
    from edgezoo.zoo.base import TensorSpec

    two_inputs = replace(digits, inputs=(TensorSpec("a", (None, 2), "float32"), TensorSpec("b", (None, 3), "float32")))
    a, b = np.ones((4, 2), np.float32), np.ones((4, 3), np.float32)
    named, _ = match_inputs({"b": b, "a": a}, two_inputs, "test")
    assert named["a"] is a and named["b"] is b
    positional, notes = match_inputs({"arr_0": a, "arr_1": b}, two_inputs, "test")
    assert positional["a"] is a and "by position" in notes[0]
    with pytest.raises(CalibrationDataError, match="2 input"):
        match_inputs([a], two_inputs, "test")


# --- TFRecord and iterables ----------------------------------------------------------------------


def test_tfrecord_with_a_feature_spec(digits, tmp_path):
    from edgezoo import _tf

    tf = _tf.tf()
    inputs = digits_inputs(50)
    pngs = [tf.io.encode_png(p[..., None]).numpy() for p in digit_pixels(50)]
    with tf.io.TFRecordWriter(str(tmp_path / "data.tfrecord")) as writer:
        for values, png in zip(inputs, pngs):
            features = {"pixels": tf.train.Feature(float_list=tf.train.FloatList(value=values.ravel())),
                        "png": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    floats = load_calibration(tmp_path / "data.tfrecord", digits, CalibrationSettings(features={"image": "pixels"}))
    images = load_calibration(tmp_path / "data.tfrecord", digits, CalibrationSettings(features={"image": "png"}))
    assert floats.details["records"] == 50 and floats.num_calibration + floats.num_heldout == 50
    assert np.allclose(floats.calibration["image"], images.calibration["image"], atol=1 / 255 + 1e-6)
    with pytest.raises(CalibrationDataError, match=r"no feature 'image'.*has: pixels, png.*--calibration-feature image="):
        load_calibration(tmp_path / "data.tfrecord", digits)
    (tmp_path / "broken.tfrecord").write_bytes(b"\x00" * 40)
    with pytest.raises(CalibrationDataError, match="cannot read TFRecord"):
        load_calibration(tmp_path / "broken.tfrecord", digits)


def test_iterable_through_the_api(digits):
    samples = digits_inputs(60)
    single = load_calibration((sample for sample in samples), digits, SMALL)  # one sample per item
    assert single.num_calibration == 40 and single.num_heldout == 10

    def endless():
        while True:
            yield {"image": samples[:5]}  # batches, forever

    batched = load_calibration(endless(), digits, SMALL)
    assert batched.num_calibration + batched.num_heldout == SMALL.samples_wanted
    with pytest.raises(CalibrationDataError, match=r"item 0 gives input 'image' an array of shape \(8,\)"):
        load_calibration(iter([np.zeros(8, np.float32)]), digits)
    with pytest.raises(CalibrationDataError, match="gave no samples"):
        load_calibration(iter([]), digits)


# --- through the pipeline -------------------------------------------------------------------------


def test_synthetic_data_warns_loudly(cli, tmp_path):
    from edgezoo import _tf

    keras = _tf.tf_keras()
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, name="y")(inputs))
    model.save(tmp_path / "tiny.h5")
    run = cli("convert", tmp_path / "tiny.h5", "--out", tmp_path / "out", "--quantize", "float32")
    assert run.returncode == 0, run.stderr
    assert "WARNING: SYNTHETIC CALIBRATION DATA" in run.stderr
    report = json.loads((tmp_path / "out" / "tiny" / "phone" / "report.json").read_text())
    assert report["calibration"]["synthetic"] is True and report["calibration"]["origin"] == "synthetic"
    assert report["calibration"]["warnings"][0].startswith("SYNTHETIC CALIBRATION DATA")


def test_image_folder_through_the_cli(cli, image_folder, tmp_path):
    run = cli("convert", "digits-cnn", "--calibration", image_folder, "--quantize", "int8", "--calibration-samples", "50",
              "--out", tmp_path)
    assert run.returncode == 0, run.stderr
    calibration = json.loads((tmp_path / "digits-cnn" / "phone" / "report.json").read_text())["calibration"]
    assert calibration["source"]["reader"] == "images" and calibration["num_calibration"] == 50
    assert calibration["inputs"]["image"]["range_settled"] is True
    bad = cli("convert", "digits-cnn", "--calibration", tmp_path / "nothing", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_api_options_accept_an_iterable(digits, tmp_path):
    samples = digits_inputs(80)
    result = edgezoo.convert(digits, targets=("phone",), quantize="int8", calibration=iter(samples), out_dir=tmp_path)
    assert result.targets[0].report["calibration"]["source"]["reader"] == "iterable"
    assert result.passed
