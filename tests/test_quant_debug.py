"""Per-layer int8 error, --keep-float and the automatic float fallback, on the bundled digits model with
calibration images written to disk. A user profile with a strict int8 tolerance (min SNR 60 dB) makes
plain int8 fail (about 48 dB here); keeping the worst layers in float brings it back.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgezoo
from edgezoo.errors import TargetConstraintError, UsageError
from tests.digit_images import write_digit_images

STRICT_SNR_DB = 60.0


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration") / "images"
    write_digit_images(folder, 600)
    return folder


def strict_profile(folder, allow_float_fallback: bool = True):
    path = folder / ("strict.toml" if allow_float_fallback else "strict-integer-only.toml")
    path.write_text(
        f'name = "{path.stem}"\nformat = "tflite"\nruntime = "litert"\nquantization = "int8"\n'
        f"allow_float_fallback = {str(allow_float_fallback).lower()}\n"
        f"[tolerances.int8]\nmin_snr_db = {STRICT_SNR_DB}\nmin_top1_agreement = 0.95\n"
    )
    return path


def tensor_types(artifact_path) -> dict[str, str]:
    """Each op's output tensor name -> its dtype name, in the converted model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact_path))
    details = interpreter.get_tensor_details()
    written = {i for op in interpreter._get_ops_details() for i in op["outputs"]}
    return {d["name"]: np.dtype(d["dtype"]).name for d in details if d["index"] in written}


def test_auto_fallback_turns_failing_int8_parity_into_passing(images, tmp_path, cli):
    profile = strict_profile(tmp_path)
    common = ("convert", "digits-cnn", "--target", profile, "--calibration", images)

    off = cli(*common, "--no-auto-fallback", "--out", tmp_path / "off")
    assert off.returncode == 1, off.stderr
    report_off = json.loads((tmp_path / "off" / "digits-cnn" / "strict" / "report.json").read_text())
    assert not report_off["passed"] and report_off["float_fallback"]["outcome"] == "disabled"
    snr_off = report_off["parity"]["outputs"][0]["snr_db"]
    assert snr_off < STRICT_SNR_DB
    # The debugger's per-layer error, worst first, covers the model's layers.
    layers = report_off["quantization_debug"]["layers"]
    errors = [layer["relative_rmse"] for layer in layers]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0
    assert {"digits_cnn/conv1", "digits_cnn/conv2", "digits_cnn/dense", "digits_cnn/logits"} <= {layer["layer"] for layer in layers}

    on = cli(*common, "--out", tmp_path / "on")
    assert on.returncode == 0, on.stderr
    folder = tmp_path / "on" / "digits-cnn" / "strict"
    report_on = json.loads((folder / "report.json").read_text())
    fallback = report_on["float_fallback"]
    assert report_on["passed"] and fallback["outcome"] == "passed"
    assert report_on["parity"]["outputs"][0]["snr_db"] >= STRICT_SNR_DB > snr_off
    weighted = [layer for layer in layers if layer["relative_rmse"] > 1e-4]
    assert 1 <= len(fallback["kept_float"]) < len(weighted)  # some layers moved, not all
    assert [a["passed"] for a in fallback["attempts"]][-1] is True
    assert "float fallback: int8 parity passed after moving" in on.stdout
    # The artifact really mixes: the kept layers compute in float, the others stay int8.
    types = tensor_types(folder / "model.tflite")
    assert "int8" in types.values() and "float32" in types.values()
    assert report_on["artifact"]["sha256"] != report_off["artifact"]["sha256"]


def test_keep_float_leaves_named_layer_in_float(digits, tmp_path):
    result = edgezoo.convert(digits, targets=("phone",), quantize="int8", keep_float=("conv2",), out_dir=tmp_path)
    target = result.targets[0]
    assert target.report["float_fallback"]["kept_float"] == ["digits_cnn/conv2"]
    types = tensor_types(target.artifact.path)
    conv2 = [name for name in types if name.startswith("digits_cnn/conv2/")]
    conv1 = [name for name in types if name.startswith("digits_cnn/conv1/")]
    assert conv2 and all(types[name] == "float32" for name in conv2)
    assert conv1 and all(types[name] == "int8" for name in conv1)
    assert target.passed


def test_keep_float_unknown_layer_lists_the_layers(digits, tmp_path):
    with pytest.raises(UsageError, match=r"no such layer.*digits_cnn/conv1"):
        edgezoo.convert(digits, targets=("phone",), quantize="int8", keep_float=("conv9",), out_dir=tmp_path)


def test_keep_float_needs_int8(digits, tmp_path):
    with pytest.raises(UsageError, match="full-integer int8"):
        edgezoo.convert(digits, targets=("phone",), quantize="float16", keep_float=("conv2",), out_dir=tmp_path)


def test_integer_only_target_says_it_cannot_fall_back(digits, images, tmp_path):
    profile = strict_profile(tmp_path, allow_float_fallback=False)
    result = edgezoo.convert(digits, targets=(str(profile),), calibration=images, out_dir=tmp_path / "out")
    fallback = result.targets[0].report["float_fallback"]
    assert not result.passed
    assert fallback["outcome"] == "forbidden by target" and not fallback["attempts"]
    assert "integer ops only" in fallback["message"] and "snr_db" in fallback["message"]
    with pytest.raises(TargetConstraintError, match="integer ops only") as caught:
        edgezoo.convert(digits, targets=(str(profile),), calibration=images, keep_float=("conv2",), out_dir=tmp_path / "kept")
    assert caught.value.exit_code == 3


def test_microcontroller_profile_forbids_float_fallback():
    assert edgezoo.resolve_profile("microcontroller").allow_float_fallback is False
    assert edgezoo.resolve_profile("phone").allow_float_fallback is True
