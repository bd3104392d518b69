"""edgezoo finetune: a head trained on the bundled digits-cnn's features for a labelling it was not trained for
(digits 0-4 "low" against 5-9 "high"), from a folder of 8x8 PNGs; exported with raw-pixel input, converted, and its
task accuracy measured against the labels on LiteRT, ONNX Runtime and TFLM. One training run for the whole module."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.digit_images import DIGITS_NPZ, digit_pixels

COUNT = 300
# Few epochs, a higher learning rate than the default: the test needs a model that learned, not the best one.
TRAINING = dict(epochs=8, learning_rate=0.01, dropout=0.1, seed=0)
TARGETS = ("phone", "onnx", "microcontroller")


def digit_labels(count: int, start: int = 0) -> np.ndarray:
    return np.load(DIGITS_NPZ)["labels"][start : start + count]


def write_class_folders(folder: Path, count: int = COUNT) -> Path:
    from PIL import Image

    for index, (pixels, digit) in enumerate(zip(digit_pixels(count), digit_labels(count))):
        target = folder / ("high" if digit >= 5 else "low") / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(target)
    return folder


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    return write_class_folders(tmp_path_factory.mktemp("finetune_data") / "digits")


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, digit_folder):
    import edgezoo

    epochs = []
    result = edgezoo.finetune("digits-cnn", data=digit_folder, out_dir=tmp_path_factory.mktemp("finetune_out"), target=TARGETS,
                              qat=True, qat_epochs=2, on_epoch=lambda *report: epochs.append(report), **TRAINING)
    return result, epochs


@pytest.fixture(scope="module")
def held_out_split(finetuned, digit_folder):
    """The held-out test split, rebuilt independently from the data, the seed and the documented split."""
    from edgezoo.transfer.data import read_labelled, stratified_split

    data = read_labelled(digit_folder, (8, 8, 1))
    return stratified_split(data, 0.15, 0.15, TRAINING["seed"]).test


def test_trained_model_beats_chance_on_every_runtime_and_the_table_is_measured(finetuned, held_out_split):
    """Accuracy per runtime recomputed here from each artifact's outputs on its runtime against the true labels."""
    from edgezoo.formats import runner_for

    result, epochs = finetuned
    assert result.exit_code == 0, result.to_json()["conversion"]
    rows = {row["model"]: row for row in result.accuracy}
    assert set(rows) == {"float (trained SavedModel)", *TARGETS, "float (trained SavedModel) + QAT", "microcontroller + QAT"}
    assert {rows[t]["runtime"] for t in TARGETS} == {"litert", "onnxruntime", "tflm"}
    assert rows["microcontroller"]["quantization"] == "int8"
    assert epochs and epochs[0][:3] == ("head", 1, TRAINING["epochs"])  # the progress callback saw every epoch
    assert rows["float (trained SavedModel)"]["accuracy"] >= 0.85  # chance is about 0.5: it learned the new labelling
    for target in (*result.conversion.targets, *result.qat_conversion.targets):
        name = target.target + (" + QAT" if target in result.qat_conversion.targets else "")
        outputs = runner_for(target.profile.runtime).run(target.artifact, {"image": held_out_split.pixels})["probabilities"]
        measured = float(np.mean(outputs.argmax(-1) == held_out_split.labels))
        assert rows[name]["accuracy"] == pytest.approx(measured), name
        assert rows[name]["samples"] == len(held_out_split) == result.report["training"]["split"]["test"]
        assert rows[name]["accuracy"] >= 0.8, name
    assert [t.target for t in result.qat_conversion.targets] == ["microcontroller"]  # --qat converts the int8 targets only
    assert result.qat_conversion.targets[0].artifact.quantization.value == "int8"
    assert [phase for phase, *_ in epochs].count("qat") == len([r for r in result.report["training"]["history"] if r["phase"] == "qat"]) >= 1
    confusion = np.asarray(result.report["test"]["confusion"])
    assert confusion.sum() == len(held_out_split) and np.trace(confusion) == result.report["test"]["correct"]


def test_the_exported_model_takes_raw_pixels_and_is_a_zoo_source(finetuned, held_out_split):
    import edgezoo
    from edgezoo.zoo.reference import run_reference

    result, _ = finetuned
    model = edgezoo.load(str(result.model.saved_model_dir))  # a zoo source like any other
    assert model.labels == ("high", "low") and model.task == "classification" and model.name == result.model.name
    assert model.preprocessing.pixel_max == 255 and model.preprocessing.scale == 1.0
    assert "0..16 divided by 16" in model.preprocessing.description  # the backbone's own, inside the model
    assert model.details["training"]["split"]["seed"] == 0
    raw = run_reference(model, {"image": held_out_split.pixels})["probabilities"].argmax(-1)
    scaled = run_reference(model, {"image": held_out_split.pixels / 255.0})["probabilities"].argmax(-1)  # what the backbone expects
    assert np.mean(raw == held_out_split.labels) >= 0.85
    assert np.mean(scaled != raw) > 0.1, "pre-scaled input gave the same answers: the scaling is not inside the model"
    assert (result.output_dir / "labels.txt").read_text().split() == ["high", "low"]


def test_a_broken_artifact_loses_accuracy_and_parity(finetuned, held_out_split, tmp_path):
    from edgezoo.formats.base import Artifact
    from edgezoo.transfer.accuracy import artifact_accuracy, run_outputs
    from edgezoo.targets.profile import Tolerance
    from edgezoo.validate import compare_outputs
    from tests.tamper import tamper_onnx_weights

    result, _ = finetuned
    onnx = next(t for t in result.conversion.targets if t.target == "onnx")
    broken_path = tmp_path / "model.onnx"
    shutil.copy(onnx.artifact.path, broken_path)
    tamper_onnx_weights(broken_path)
    broken = Artifact(**{**onnx.artifact.__dict__, "path": broken_path, "files": (broken_path,)})
    good = artifact_accuracy(onnx.artifact, "onnxruntime", held_out_split, "image", "probabilities")
    bad = artifact_accuracy(broken, "onnxruntime", held_out_split, "image", "probabilities")
    assert bad["accuracy"] < good["accuracy"] - 0.1
    reference = {"probabilities": run_outputs(onnx.artifact, "onnxruntime", held_out_split.pixels, "image", "probabilities")}
    candidate = {"probabilities": run_outputs(broken, "onnxruntime", held_out_split.pixels, "image", "probabilities")}
    assert not compare_outputs(reference, candidate, classifier=True, tolerance=onnx.parity.tolerance, runtime="onnxruntime").passed
    assert compare_outputs(reference, reference, classifier=True, tolerance=onnx.parity.tolerance, runtime="onnxruntime").passed


def test_report_html_is_self_contained_with_curves_confusion_and_mistakes(finetuned):
    result, _ = finetuned
    html = (result.output_dir / "report.html").read_text()
    report = json.loads((result.output_dir / "report.json").read_text())
    assert report["kind"] == "finetune" and len(report["accuracy"]) == 1 + len(TARGETS) + 2
    assert html.count("<svg") >= 2 and "loss per epoch" in html and "accuracy per epoch" in html
    assert "Confusion matrix" in html and "precision" in html and "tflm" in html and "onnxruntime" in html
    assert len(report["misclassified"]) == min(8, report["test"]["samples"] - report["test"]["correct"])
    assert html.count("data:image/png;base64,") == len(report["misclassified"])
    assert not re.search(r"(src|href)=[\"']?(https?:|//)", html) and "<script" not in html  # nothing fetched from elsewhere


# Issue 23. On this test's split (600 PNGs, seed 1, 90 test images) the linear head of before (--hidden-units 0) scores
# 0.856 (77 of 90) on float, LiteRT and onnxruntime alike and the default head 0.989 (89): the bound (86 of 90) is 9
# images above the old head and 3 below the new one. Over seeds 0..4 (bench/transfer.py --experiments folder): linear 0.856..0.944,
# hidden layer 0.967..1.000 on every runtime.
ODD_EVEN_BOUND = 0.95
ODD_EVEN_SEED = 1


def test_odd_even_digits_from_32x32_pngs_are_learned_on_the_runtimes(tmp_path):
    """Issue 23: odd/even from a folder of 600 32x32 PNGs (resized to digits-cnn's 8x8) with the default options. The
    backbone's features separate the ten digits; a linear head on them stopped short of odd/even within its epochs."""
    import edgezoo
    from tests.digit_images import write_odd_even_folders

    folder = write_odd_even_folders(tmp_path / "odd_even", 600)
    result = edgezoo.finetune("digits-cnn", data=folder, out_dir=tmp_path / "out", target=("phone", "onnx"), seed=ODD_EVEN_SEED)
    assert result.exit_code == 0, result.to_json()["conversion"]
    assert result.report["training"]["split"]["test"] == 90 and result.model.labels == ("even", "odd")
    assert result.report["training"]["settings"]["hidden_units"] == 64  # the default head, as a user gets it
    rows = {row["model"]: row for row in result.accuracy}
    assert {rows[t]["runtime"] for t in ("phone", "onnx")} == {"litert", "onnxruntime"}
    for name in ("float (trained SavedModel)", "phone", "onnx"):
        assert rows[name]["accuracy"] >= ODD_EVEN_BOUND, (name, rows[name]["accuracy"])


# --- data ----------------------------------------------------------------------------------------------------------


def test_split_is_stratified_seeded_and_disjoint(digit_folder):
    from edgezoo.transfer.data import read_labelled, stratified_split

    data = read_labelled(digit_folder, (8, 8, 1))
    first, again = stratified_split(data, 0.15, 0.15, 3), stratified_split(data, 0.15, 0.15, 3)
    other = stratified_split(data, 0.15, 0.15, 4)
    assert first.test.names == again.test.names and first.test.names != other.test.names
    names = [set(part.names) for part in (first.train, first.validation, first.test)]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2]) and sum(map(len, names)) == len(data)
    for part in (first.train, first.validation, first.test):  # each split keeps the classes' proportions
        share = part.class_counts["high"] / len(part)
        assert abs(share - data.class_counts["high"] / len(data)) < 0.05


def test_npz_and_tfrecord_data_read_like_the_folder(tmp_path):
    from edgezoo import _tf
    from edgezoo.transfer.data import read_labelled

    pixels, labels = digit_pixels(30), digit_labels(30)
    np.savez(tmp_path / "d.npz", x=pixels, y=labels % 2)
    from_npz = read_labelled(tmp_path / "d.npz", (16, 16, 3))  # resized and made RGB for the backbone
    assert from_npz.pixels.shape == (30, 16, 16, 3) and from_npz.class_names == ("0", "1")
    assert np.array_equal(from_npz.labels, labels % 2)
    tf = _tf.tf()
    import io

    from PIL import Image

    with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as writer:
        for image, label in zip(pixels, labels):
            png = io.BytesIO()
            Image.fromarray(image, mode="L").save(png, format="PNG")
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.getvalue()])),
                       "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"odd" if label % 2 else b"even"]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    from_records = read_labelled(tmp_path / "d.tfrecord", (8, 8, 1))
    assert from_records.class_names == ("even", "odd")
    assert np.array_equal(from_records.labels, labels % 2) and np.array_equal(from_records.pixels[..., 0], pixels)


def _bad_folder(root: Path, case: str) -> Path:
    from PIL import Image

    folder = root / case
    counts = {"one class": {"only": 5}, "tiny class": {"big": 5, "small": 2}, "loose images": {}}[case]
    for name, count in counts.items():
        for index, pixels in enumerate(digit_pixels(count)):
            (folder / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, mode="L").save(folder / name / f"{index}.png")
    if case == "loose images":
        folder.mkdir(parents=True)
        Image.fromarray(digit_pixels(1)[0], mode="L").save(folder / "a.png")
    return folder


@pytest.mark.parametrize("case, message", [
    ("one class", "at least 2 classes"),
    ("tiny class", "'small' (2) have too few examples to split"),
    ("loose images", "no class sub-folders (it holds 1 images directly"),
])
def test_bad_folders_are_refused_with_what_to_do(tmp_path, case, message):
    from edgezoo.errors import CalibrationDataError
    from edgezoo.transfer.data import read_labelled

    with pytest.raises(CalibrationDataError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        read_labelled(_bad_folder(tmp_path, case), (8, 8, 1))
    assert caught.value.exit_code == 2


def test_bad_npz_and_unreadable_files(tmp_path, digit_folder):
    from edgezoo.errors import CalibrationDataError
    from edgezoo.transfer.data import read_labelled

    np.savez(tmp_path / "no_y.npz", x=digit_pixels(10))
    with pytest.raises(CalibrationDataError, match="no array y"):
        read_labelled(tmp_path / "no_y.npz", (8, 8, 1))
    np.savez(tmp_path / "short.npz", x=digit_pixels(10), y=np.zeros(9, np.int64))
    with pytest.raises(CalibrationDataError, match="x holds 10 images but y holds 9 labels"):
        read_labelled(tmp_path / "short.npz", (8, 8, 1))
    np.savez(tmp_path / "gap.npz", x=digit_pixels(10), y=np.asarray([0, 2] * 5))
    with pytest.raises(CalibrationDataError, match="class\\(es\\) 1 have no examples"):
        read_labelled(tmp_path / "gap.npz", (8, 8, 1))
    copy = shutil.copytree(digit_folder, tmp_path / "with_corrupt")
    (copy / "low" / "broken.png").write_bytes(b"\x89PNG not really")
    (copy / "high" / "empty.jpg").write_bytes(b"")
    data = read_labelled(copy, (8, 8, 1))
    assert data.details["images_skipped"] == 2 and len(data) == COUNT
    assert any("skipped 2 unreadable or corrupt image(s)" in w and "low/broken.png" in w for w in data.warnings)


# --- the command line ----------------------------------------------------------------------------------------------


def test_cli_refuses_bad_data_with_exit_2(cli, tmp_path):
    folder = _bad_folder(tmp_path, "tiny class")
    result = cli("finetune", "digits-cnn", "--data", folder, "--out", tmp_path / "out", "--target", "phone")
    assert result.returncode == 2, result.stderr
    assert "class(es) 'small' (2) have too few examples to split" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("saved_model"))


def test_qat_without_an_int8_target_is_refused_before_any_work(tmp_path):
    import edgezoo
    from edgezoo.errors import UsageError

    with pytest.raises(UsageError, match="--qat trains for full-integer \\(int8\\) targets, and none was given") as caught:
        edgezoo.finetune("digits-cnn", data=tmp_path, qat=True, target="phone", out_dir=tmp_path / "out")
    assert caught.value.exit_code == 2 and not (tmp_path / "out").exists()


# --- backbones and the preprocessing inside the model -------------------------------------------------------------


@pytest.mark.parametrize("family", ["mobilenet_v2", "resnet", "densenet", "efficientnet"])
def test_preprocessing_layers_do_what_the_family_expects(family):
    """Raw pixels through the exported model's first layers equal the zoo's own preprocessing of those pixels (RGB to BGR
    and the ImageNet mean for caffe, [-1, 1] for MobileNet, mean/std for torch, nothing for EfficientNet)."""
    from edgezoo import _tf
    from edgezoo.transfer.train import preprocessing_layers
    from edgezoo.zoo.keras_apps import FAMILY_PREPROCESSING

    keras = _tf.tf_keras()
    preprocessing = FAMILY_PREPROCESSING[family]
    raw = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3)).astype(np.float32)
    x = inputs = keras.Input(shape=(5, 6, 3))
    for layer in preprocessing_layers(preprocessing, 3):
        x = layer(x)
    got = keras.Model(inputs, x).predict(raw, verbose=0)
    np.testing.assert_allclose(got, preprocessing.apply(raw), rtol=1e-5, atol=1e-4)


def test_cut_at_a_named_layer_and_refusals(tmp_path):
    from edgezoo.errors import UsageError
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.zoo import LoadOptions

    cut = load_backbone("digits-cnn?features=conv2", LoadOptions())
    assert cut.feature_size == 32 and cut.details["cut_at"] == "conv2" and cut.image_shape == (8, 8, 1)  # a feature map, pooled
    assert load_backbone("digits-cnn", LoadOptions()).details["cut_at"] == "input of logits"
    with pytest.raises(UsageError, match="has no layer 'nope'. Its layers: .*conv1"):
        load_backbone("digits-cnn?features=nope", LoadOptions())
    with pytest.raises(UsageError, match="cuts a local Keras model or a bundled one"):
        load_backbone("keras:MobileNetV2?features=block_1", LoadOptions())


def test_hub_feature_vector_module_is_a_frozen_backbone(tmp_path):
    from edgezoo import _tf
    from edgezoo.errors import UsageError
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.transfer.train import build_classifier, unfreeze_top
    from edgezoo.zoo import LoadOptions

    tf = _tf.tf()
    kernel = np.random.default_rng(1).normal(size=(3, 3, 3, 6)).astype(np.float32)

    class FeatureVector(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(kernel)

        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
        def __call__(self, images):
            return tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(images, self.kernel, 1, "SAME")), axis=[1, 2])

    tf.saved_model.save(FeatureVector(), str(tmp_path / "module"), signatures={})
    backbone = load_backbone(f"hub:{tmp_path / 'module'}", LoadOptions())
    assert backbone.kind == "hub" and backbone.feature_size == 6 and backbone.image_shape == (16, 16, 3)
    assert backbone.preprocessing.scale == pytest.approx(1 / 255)  # TF Hub's [0, 1] convention
    model, _, features = build_classifier(backbone, 3, 0.0, 0)
    raw = np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    expected = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(raw / 255.0, kernel, 1, "SAME")), axis=[1, 2]).numpy()
    np.testing.assert_allclose(features.predict(raw, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.predict(raw, verbose=0).shape == (2, 3)
    with pytest.raises(UsageError, match="is used frozen"):
        unfreeze_top(backbone, 2)


def test_keras_application_is_built_without_its_top_and_pooled():
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.zoo import LoadOptions

    backbone = load_backbone("keras:MobileNetV2?weights=none&alpha=0.35&input_size=32", LoadOptions(offline=True))
    assert backbone.loaded.source == "keras:MobileNetV2?alpha=0.35&include_top=false&input_size=32x32&pooling=avg&weights=none"
    assert backbone.image_shape == (32, 32, 3) and backbone.feature_size == 1280 and backbone.fine_tunable
    assert backbone.preprocessing.offset == -1.0  # MobileNet's [-1, 1]


def test_augmented_training_then_fine_tuning_the_top_layers(digit_folder):
    """--augment trains through the augmentation on raw pixels; --fine-tune-layers 2 changes the top two backbone layers'
    weights (at the lower learning rate) and leaves the others as the zoo gave them."""
    from edgezoo.transfer import FinetuneOptions
    from edgezoo.transfer.backbone import load_backbone
    from edgezoo.transfer.data import read_labelled, stratified_split
    from edgezoo.transfer.train import train
    from edgezoo.zoo import LoadOptions

    backbone = load_backbone("digits-cnn", LoadOptions())
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in backbone.model.layers if layer.weights}
    splits = stratified_split(read_labelled(digit_folder, (8, 8, 1)), 0.15, 0.15, 0)
    options = FinetuneOptions(data=digit_folder, epochs=1, augment=True, fine_tune_layers=2, fine_tune_epochs=1, learning_rate=0.01)
    training = train(backbone, splits, options)
    assert [row["phase"] for row in training.history] == ["head", "fine-tune"]
    changed = {name for name, weights in before.items()
               if any(not np.array_equal(w, now) for w, now in zip(weights, backbone.model.get_layer(name).get_weights()))}
    assert changed == {"dense"}  # the top two layers after the cut: flatten (no weights) and dense
    assert training.model.layers[-1].name == "probabilities" and training.model.output_shape == (None, 2)


def test_a_folder_of_real_photographs_is_read_as_rgb_at_the_backbone_size(tmp_path):
    """JPEG crops of scikit-image's bundled photographs (a cat, a coffee cup), resized to the backbone's 32x32x3."""
    import skimage.data
    from PIL import Image

    from edgezoo.transfer.data import read_labelled

    for name, photo in (("cat", skimage.data.chelsea()), ("coffee", skimage.data.coffee())):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(photo[index * 40 : index * 40 + 200, index * 50 : index * 50 + 200]).save(tmp_path / "photos" / name / f"{index}.jpg")
    data = read_labelled(tmp_path / "photos", (32, 32, 3))
    assert data.pixels.shape == (6, 32, 32, 3) and data.class_names == ("cat", "coffee") and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with Image.open(tmp_path / "photos" / "coffee" / "2.jpg") as image:
        expected = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_array_equal(data.pixels[5], expected)
    assert data.pixels.max() > 200  # raw pixels, not scaled


def test_finetune_flags_reach_every_option_by_name():
    import dataclasses

    from edgezoo.cli import build_parser
    from edgezoo.options import from_namespace
    from edgezoo.transfer import FinetuneOptions

    args = build_parser().parse_args([
        "finetune", "digits-cnn", "--data", "d", "-t", "phone", "-t", "microcontroller", "--out", "o", "--name", "n",
        "--features", "dense", "--epochs", "4", "--patience", "2", "--batch-size", "8", "--learning-rate", "0.01",
        "--dropout", "0.3", "--hidden-units", "16", "--augment", "--fine-tune-layers", "5", "--fine-tune-epochs", "6",
        "--fine-tune-learning-rate", "0.0005", "--qat", "--qat-epochs", "2", "--validation-fraction", "0.2", "--test-fraction", "0.25", "--seed", "7",
        "--image-resize", "area", "--image-feature", "img", "--label-feature", "cls", "--force", "--offline",
        "--cache-dir", "c", "--mirror", "m", "--trust-model", "--calibration-samples", "50",
    ])
    options = from_namespace(FinetuneOptions, args)
    changed = {f.name for f in dataclasses.fields(FinetuneOptions) if getattr(options, f.name) != f.default}
    assert changed == {f.name for f in dataclasses.fields(FinetuneOptions)}  # every option has its flag
    assert options.targets == ("phone", "microcontroller") and options.tuning_learning_rate == 0.0005
    defaults = from_namespace(FinetuneOptions, build_parser().parse_args(["finetune", "digits-cnn", "--data", "d"]))
    assert defaults == FinetuneOptions(data="d")


def test_a_target_that_cannot_be_met_is_reported_in_the_table_and_the_exit_code(tmp_path, digit_folder):
    """One target, refused (its flash budget is 1 KiB): the trained model is still published and the table says why."""
    import edgezoo

    (tmp_path / "tiny.toml").write_text('extends = "phone"\nmax_model_bytes = 1024\n')
    result = edgezoo.finetune("digits-cnn", data=digit_folder, target=str(tmp_path / "tiny.toml"), out_dir=tmp_path / "out",
                              epochs=1, seed=0)
    assert result.exit_code == 3 and result.conversion is None
    failed = result.accuracy[-1]
    assert failed["accuracy"] is None and failed["status"] == "refused" and "flash budget of 1,024 bytes" in failed["error"]
    assert (result.output_dir / "saved_model" / "saved_model.pb").is_file()
    html = (result.output_dir / "report.html").read_text()
    assert "flash budget of 1,024 bytes" in html and "The conversion stopped" in html
