"""Metadata in every artifact edgezoo makes, read back by the runtimes an app uses: TFLite metadata (labels zipped in
the file, normalisation, value range) that leaves LiteRT's outputs bit-identical; ONNX metadata_props read by ONNX
Runtime; TF.js userDefinedMetadata read by TF.js in Node; labels.txt beside each classifier artifact; `edgezoo
validate` and `edgezoo inspect` showing it; the device bundle's check_parity.py printing the labels it finds."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest

from edgezoo.formats.base import ConversionRequest, Quantization
from edgezoo.formats.metadata import ModelFacts, embed, pixel_normalization
from edgezoo.formats.tflite import metadata as tflite_metadata
from edgezoo.zoo.base import Preprocessing
from edgezoo.zoo.keras_apps import FAMILY_PREPROCESSING, catalog
from tests.conftest import REPO
from tests.test_device_check import _copy_to_device, _on_device, device_python  # noqa: F401 (the device's Python)

NODE_READER = REPO / "edgezoo" / "formats" / "tfjs" / "js" / "read_metadata.mjs"


def preprocessing_for(architecture: str):
    """The preprocessing keras:ARCHITECTURE is loaded with: its family's (the catalog names each architecture's module)."""
    return FAMILY_PREPROCESSING[catalog()[architecture]["module"]]


@pytest.fixture(scope="module")
def converted(every_runtime):
    return {t.target: t for t in every_runtime.targets}


@pytest.mark.parametrize(("preprocessing", "channels", "mean", "std", "low", "high"), [
    (preprocessing_for("MobileNetV2"), 3, (127.5,) * 3, (127.5,) * 3, -1.0, 1.0),  # x / 127.5 - 1
    (preprocessing_for("DenseNet121"), 3, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375), -2.1179, 2.64),  # torch style
    (preprocessing_for("ResNet50"), 3, (103.939, 116.779, 123.68), (1.0,) * 3, -123.68, 151.061),  # caffe, BGR
    (preprocessing_for("EfficientNetB0"), 3, (0.0,) * 3, (1.0,) * 3, 0.0, 255.0),  # raw pixels: the model rescales itself
    (Preprocessing(scale=1 / 16, pixel_max=16, channel_order="grayscale"), 1, (0.0,), (255.0,), 0.0, 1.0),  # digits-cnn
])
def test_normalisation_maps_8_bit_pixels_to_the_models_input(preprocessing, channels, mean, std, low, high):
    got_mean, got_std = pixel_normalization(preprocessing, channels)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(got_std, std, rtol=1e-6)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 5, channels)).astype(np.float32)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    raw = pixels * preprocessing.pixel_max / 255  # what the model's recorded preprocessing starts from
    expected = preprocessing.apply(raw)
    # (pixel - mean) / std, on the channels in the model's order, is exactly the recorded preprocessing:
    ordered = pixels[..., ::-1] if preprocessing.channel_order == "BGR" else pixels
    np.testing.assert_allclose((ordered - np.array(got_mean, np.float32)) / np.array(got_std, np.float32), expected, rtol=1e-5, atol=1e-4)
    lowest, highest = min((0 - m) / s for m, s in zip(got_mean, got_std)), max((255 - m) / s for m, s in zip(got_mean, got_std))
    assert (lowest, highest) == pytest.approx((low, high), abs=1e-3)


@pytest.fixture(scope="module")
def raw_and_embedded(digits, digits_data, tmp_path_factory):
    """digits-cnn converted by the TFLite converter alone (no metadata), and a copy with edgezoo's metadata written in."""
    from edgezoo.formats.tflite import convert as tflite

    pairs = {}
    for quantization in (Quantization.FLOAT16, Quantization.INT8):
        folder = tmp_path_factory.mktemp(f"raw-{quantization.value}")
        request = ConversionRequest(quantization=quantization, calibration=digits_data if quantization.needs_calibration else None,
                                    integer_io=quantization.needs_calibration)
        raw = tflite.convert(digits, request, folder)
        (folder / "raw.tflite").write_bytes(raw.path.read_bytes())
        pairs[quantization.value] = (folder / "raw.tflite", embed(digits, raw))
    return pairs


@pytest.mark.parametrize("quantization", ["float16", "int8"])
def test_metadata_leaves_litert_outputs_bit_identical(raw_and_embedded, digits_data, quantization):
    from edgezoo.formats.tflite import run_litert as litert

    raw_path, artifact = raw_and_embedded[quantization]
    assert artifact.path.stat().st_size - raw_path.stat().st_size == artifact.details["metadata_bytes"] > 0
    before = litert.run(dataclasses.replace(artifact, path=raw_path, files=(raw_path,)), digits_data.heldout)
    after = litert.run(artifact, digits_data.heldout)
    assert before.keys() == after.keys() == {"probabilities"}
    np.testing.assert_array_equal(before["probabilities"], after["probabilities"])  # bit for bit, 360 inputs
    assert tflite_metadata.read(raw_path) is None
    assert tflite_metadata.read(artifact.path)["labels"] == [str(d) for d in range(10)]


def test_tflite_metadata_read_back(converted, digits):
    for name in ("phone-f32", "phone-int8", "microcontroller"):
        target = converted[name]
        metadata = tflite_metadata.read(target.artifact.path)
        assert (metadata["name"], metadata["version"], metadata["min_parser_version"]) == ("digits-cnn", "1", "1.0.0")
        assert metadata["description"] == digits.description and metadata["author"] == digits.author and metadata["license"] == digits.license
        image, = metadata["inputs"]
        assert (image["name"], image["content"], image["color_space"]) == ("image", "image", "GRAYSCALE")
        assert image["normalization"] == {"mean": [0.0], "std": [255.0]} and image["range"] == {"min": [0.0], "max": [1.0]}
        output, = metadata["outputs"]
        assert output["name"] == "probabilities" and output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        assert metadata["labels"] == list(digits.labels) and metadata["files_in_zip"] == ["edgezoo.json", "labels.txt"]
        facts = metadata["edgezoo"]
        assert facts["source"] == "bundled:digits-cnn" and facts["source_sha256"] == digits.sha256
        assert facts["quantization"] == target.artifact.quantization.value
        assert (target.output_dir / "labels.txt").read_text().splitlines() == list(digits.labels)
        assert target.report["metadata"] == json.loads(json.dumps(metadata))  # report.json: read back from the shipped file
        assert target.report["artifact"]["metadata_bytes"] > 0


def test_onnx_runtime_reads_the_metadata_props(converted, digits):
    import onnxruntime

    target = converted["onnx"]
    meta = onnxruntime.InferenceSession(str(target.artifact.path), providers=["CPUExecutionProvider"]).get_modelmeta()
    props = meta.custom_metadata_map
    assert json.loads(props["labels"]) == list(digits.labels) and props["labelled_output"] == "probabilities"
    image, = json.loads(props["images"])
    assert (image["name"], image["color_space"], image["mean"], image["std"]) == ("image", "GRAYSCALE", [0.0], [255.0])
    assert json.loads(props["preprocessing"])["scale"] == digits.preprocessing.scale
    assert props["source"] == "bundled:digits-cnn" and props["source_sha256"] == digits.sha256 and props["converted_by"].startswith("edgezoo ")
    assert meta.description == digits.description  # the model's doc_string
    assert (target.output_dir / "labels.txt").read_text().splitlines() == list(digits.labels)


def test_tfjs_in_node_reads_the_user_defined_metadata(converted, digits):
    target = converted["browser-f32"]
    done = subprocess.run(["node", str(NODE_READER), str(target.artifact.path)], capture_output=True, text=True, timeout=120,
                          cwd=NODE_READER.parent)
    assert done.returncode == 0, done.stderr
    read = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert read["inputs"] == ["image"] and read["outputs"] == ["probabilities"]  # the whole model loaded, weights too
    metadata = read["metadata"]
    assert metadata["labels"] == list(digits.labels) and metadata["preprocessing"]["description"] == digits.preprocessing.description
    assert metadata["images"][0]["std"] == [255.0] and metadata["name"] == "digits-cnn" and metadata["quantization"] == "float32"
    assert (target.artifact.path.parent / "labels.txt").read_text().splitlines() == list(digits.labels)


def test_check_parity_prints_the_labels_in_the_model_on_the_device(converted, device_python, tmp_path):  # noqa: F811
    device = _copy_to_device(converted["phone-int8"].output_dir, tmp_path / "device")
    done = _on_device(device_python, device)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "labels (10, labels.txt inside the model): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in done.stdout
    (device / "model.tflite").write_bytes(_flatbuffer_only(device / "model.tflite"))
    assert "labels: none in the model" in _on_device(device_python, device).stdout


def _flatbuffer_only(path) -> bytes:
    """The .tflite cut where the zip of associated files begins: the flatbuffer alone, as the converter writes it."""
    import zipfile

    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        start = min(info.header_offset for info in archive.infolist())
    return data[:start]


def test_validate_shows_the_metadata_it_reads_back(converted, capsys, tmp_path, digits):
    from edgezoo.cli import run

    assert run(["validate", "digits-cnn", str(converted["phone-f32"].artifact.path), "--out", str(tmp_path)]) == 0  # in this process: TF is loaded
    shown = capsys.readouterr().out
    assert "metadata: digits-cnn v1 -- Small CNN for 8x8 handwritten digits" in shown
    assert "labels (10): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in shown
    assert "image: image, GRAYSCALE, (pixel - [0.0]) / [255.0] -> [0.0]..[1.0]" in shown
    report = json.loads((tmp_path / "digits-cnn" / "validate-phone" / "report.json").read_text())
    assert report["metadata"]["labels"] == list(digits.labels)


def test_inspect_shows_what_a_receiver_wants_to_know(converted, cli, tmp_path):
    micro = converted["microcontroller"]
    done = cli("inspect", micro.artifact.path)
    assert done.returncode == 0, done.stderr
    measured = micro.artifact.details["arena_bytes_measured"]
    for line in ("tflite, ", "input  image          [1, 8, 8, 1] int8, scale 0.00392157 zero point -128", "labels (10): 0, 1, 2",
                 "runtimes (no delegate): LiteRT: runs all 5; TFLM: runs all 5", "quantisation int8",
                 f"tensor arena: {measured:,} bytes measured on TFLM ({micro.artifact.details['arena_bytes']:,} with the margin)"):
        assert line in done.stdout, done.stdout
    data = json.loads(cli("inspect", converted["browser-f32"].artifact.path.parent, "--json").stdout)
    assert data["format"] == "tfjs" and data["labels"] == [str(d) for d in range(10)] and data["made_by_edgezoo"]["target"] == "browser-f32"
    assert data["inputs"] == [{"name": "image", "shape": [None, 8, 8, 1], "dtype": "float32"}] and "_FusedConv2D" in data["ops"]
    data = json.loads(cli("inspect", converted["onnx"].artifact.path, "--json").stdout)
    assert data["format"] == "onnx" and data["opset"]["ai.onnx"] == 17 and data["metadata"]["source"] == "bundled:digits-cnn"
    alone = tmp_path / "alone.tflite"  # the same file without its report: nothing recorded, no arena
    shutil.copyfile(micro.artifact.path, alone)
    text = cli("inspect", alone).stdout
    assert "made by edgezoo: no report.json of this file beside it" in text and "tensor arena: not measured" in text


def test_inspect_refuses_what_is_not_an_artifact(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    done = cli("inspect", tmp_path / "notes.txt")
    assert done.returncode == 2 and "is not an artifact edgezoo can validate or inspect" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "broken.tflite").write_bytes(b"\x00" * 64)
    done = cli("inspect", tmp_path / "broken.tflite")
    assert done.returncode == 2 and "not a readable .tflite flatbuffer" in done.stderr and "Traceback" not in done.stderr


def test_facts_carry_no_time_and_no_labels_for_a_model_without_them(digits):
    facts = ModelFacts.of(digits, "float16")
    assert "created" not in json.dumps(facts.to_json()) and facts.labels == tuple(digits.labels)
    unlabelled = ModelFacts.of(dataclasses.replace(digits, labels=None), "float16")
    assert unlabelled.labels is None and unlabelled.labels_text() == ""


def test_every_format_folder_has_its_converter_reader_metadata_and_runners():
    """One folder per format with the same file names (edgezoo/formats/__init__.py), each registered once."""
    from pathlib import Path

    import edgezoo.formats as formats

    folders = {p.parent.name for p in Path(formats.__file__).parent.glob("*/convert.py")}
    assert folders == set(formats.FORMATS)
    for format_name in formats.FORMATS:
        for part, names in (("convert", ("FORMAT", "convert")), ("inspect", ("FORMAT", "TARGET", "matches", "read")),
                            ("metadata", ("FORMAT", "WHERE", "write", "read"))):
            module = formats.part(format_name, part)
            assert module.FORMAT == format_name and all(hasattr(module, name) for name in names), (format_name, part)
    runners = {(p.parent.name, p.stem) for p in Path(formats.__file__).parent.glob("*/run_*.py")}
    assert runners == set(formats.RUNTIMES.values())
    for runtime in formats.RUNTIMES:
        assert formats.runner_for(runtime).RUNTIME == runtime


# --- one grayscale channel ---------------------------------------------------------------------------


def test_a_hand_built_one_channel_model_is_described_as_grayscale_and_rgb_stays_rgb(digits):
    """The default Preprocessing says RGB; on a [N, H, W, 1] input the facts say grayscale (GRAYSCALE in TFLite's enum)."""
    from edgezoo.zoo.base import TensorSpec

    gray = dataclasses.replace(digits, preprocessing=Preprocessing(), inputs=(TensorSpec("face", (None, 12, 12, 1), "float32"),))
    facts = ModelFacts.of(gray, "float32")
    assert facts.preprocessing["channel_order"] == "grayscale" and facts.images[0].color_space == "GRAYSCALE"
    colour = dataclasses.replace(gray, inputs=(TensorSpec("photo", (None, 12, 12, 3), "float32"),))
    facts = ModelFacts.of(colour, "float32")
    assert facts.preprocessing["channel_order"] == "RGB" and facts.images[0].color_space == "RGB"


def test_a_one_channel_hdf5_model_is_grayscale_in_every_format_and_report(tmp_path):
    """A Keras 2-era .hdf5 with one input channel and no preprocessing of its own: TFLite metadata ColorSpace GRAYSCALE
    (2), ONNX and TF.js metadata and report.json say grayscale, and the HTML report's preprocessing line too."""
    import edgezoo
    from edgezoo.formats.tfjs import convert as tfjs
    from edgezoo.formats.onnx import metadata as onnx_metadata
    from edgezoo.formats.tfjs import metadata as tfjs_metadata
    from tests.legacy_hdf5 import gray_images, make_gray_hdf5

    model = edgezoo.load(str(make_gray_hdf5(tmp_path)))
    assert model.preprocessing.channel_order == "grayscale"
    np.savez(tmp_path / "faces.npz", face=gray_images(40))
    result = edgezoo.convert(model, targets=["phone", "onnx"], out_dir=tmp_path / "out", calibration=tmp_path / "faces.npz")
    assert result.passed, result.to_json()
    phone, onnx_target = result.targets
    assert phone.report["model"]["preprocessing"]["channel_order"] == "grayscale"
    assert "one grayscale channel" in (phone.output_dir / "report.html").read_text()
    image, = tflite_metadata.read(phone.artifact.path)["inputs"]
    assert image["color_space"] == "GRAYSCALE" and "GRAYSCALE" in image["description"]
    assert tflite_metadata.build_metadata(ModelFacts.of(model, "float16"), ["face"], ["emotion"]).find(b"RGB") == -1
    props = onnx_metadata.read(onnx_target.artifact.path)
    assert props["images"][0]["color_space"] == "GRAYSCALE" and props["preprocessing"]["channel_order"] == "grayscale"
    folder = tmp_path / "tfjs"
    folder.mkdir()
    artifact = embed(model, tfjs.convert(model, ConversionRequest(quantization=Quantization.FLOAT32), folder))
    facts = tfjs_metadata.read(artifact.path)
    assert facts["images"][0]["color_space"] == "GRAYSCALE" and facts["preprocessing"]["channel_order"] == "grayscale"
