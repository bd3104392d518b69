"""--keep-float and the float fallback on the bundled digits model, and what integer-only targets and non-int8 modes say.

A user profile with a strict int8 tolerance (min SNR 50 dB) makes plain int8 fail (46 dB here); the fallback
keeps the ops of worst measured effect in float until it passes.
"""

from __future__ import annotations

import json

import pytest

import edgezoo
from edgezoo.formats.tflite import precision as tflite_precision
from edgezoo.errors import TargetConstraintError, UsageError

STRICT_SNR_DB = 50.0


def strict_profile(folder, allow_float_fallback: bool = True):
    path = folder / ("strict.toml" if allow_float_fallback else "strict-integer-only.toml")
    path.write_text(
        f'name = "{path.stem}"\nformat = "tflite"\nruntime = "litert"\nquantization = "int8"\n'
        f"allow_float_fallback = {str(allow_float_fallback).lower()}\n"
        f"[tolerances.int8]\nmin_snr_db = {STRICT_SNR_DB}\nmin_top1_agreement = 0.95\n"
    )
    return path


def precisions(path) -> dict[str, set[str]]:
    """Layer -> the precisions its ops compute in, read from the .tflite."""
    found: dict[str, set[str]] = {}
    for op in tflite_precision.op_precisions(path.read_bytes()):
        if op.computes:
            found.setdefault(op.layer, set()).add(op.precision)
    return found


def test_fallback_turns_failing_int8_parity_into_passing(digits, tmp_path, cli):
    profile = strict_profile(tmp_path)
    off = edgezoo.convert(digits, targets=(str(profile),), auto_fallback=False, out_dir=tmp_path / "off")
    report_off = off.targets[0].report
    assert not off.passed and report_off["float_fallback"]["outcome"] == "disabled"
    snr_off = report_off["parity"]["outputs"][0]["snr_db"]
    assert snr_off < STRICT_SNR_DB
    assert not report_off["quantization_trace"]["layers_measured"]  # no per-layer measurement without a use for it

    on = cli("convert", "digits-cnn", "--target", profile, "--out", tmp_path / "on")
    assert on.returncode == 0, on.stderr
    folder = tmp_path / "on" / "digits-cnn" / "strict"
    report_on = json.loads((folder / "report.json").read_text())
    fallback = report_on["float_fallback"]
    assert report_on["passed"] and fallback["outcome"] == "passed"
    assert report_on["parity"]["outputs"][0]["snr_db"] >= STRICT_SNR_DB > snr_off
    layers = report_on["quantization_trace"]["layers"]
    assert {"digits_cnn/conv1", "digits_cnn/conv2", "digits_cnn/dense", "digits_cnn/logits"} <= {layer["layer"] for layer in layers}
    kept = fallback["steps"][fallback["kept_step"]]
    assert kept["passed"] and 1 <= kept["float_count"] < fallback["float_end_count"]  # some ops moved, not all
    assert "float fallback: int8 parity passed with" in on.stdout
    # The artifact really mixes: the layers reported float compute in float in the file, others in int8.
    found = precisions(folder / "model.tflite")
    assert fallback["kept_float"] and all(found[layer] == {"float32"} for layer in fallback["kept_float"])
    assert any(kinds == {"int8"} for kinds in found.values())
    assert report_on["artifact"]["sha256"] != report_off["artifact"]["sha256"]


def test_keep_float_leaves_named_layer_in_float(digits, tmp_path):
    result = edgezoo.convert(digits, targets=("phone",), quantize="int8", keep_float=("conv2",), out_dir=tmp_path)
    target = result.targets[0]
    assert target.report["float_fallback"]["kept_float"] == ["digits_cnn/conv2"]
    found = precisions(target.artifact.path)
    assert found["digits_cnn/conv2"] == {"float32"} and found["digits_cnn/conv1"] == {"int8"}
    assert target.passed and target.artifact.quantization.value == "int8"


def test_keep_float_naming_no_layer_is_a_usage_error(digits, tmp_path, cli):
    with pytest.raises(UsageError, match=r"no such layer.*digits_cnn/conv1"):
        edgezoo.convert(digits, targets=("phone",), quantize="int8", keep_float=("conv9",), out_dir=tmp_path)
    done = cli("convert", "digits-cnn", "--quantize", "int8", "--keep-float", "conv9", "--out", tmp_path / "cli")
    assert done.returncode == 2 and "--keep-float conv9: the model has no such layer" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_keep_float_needs_int8(digits, tmp_path):
    with pytest.raises(UsageError, match="full-integer int8"):
        edgezoo.convert(digits, targets=("phone",), quantize="float16", keep_float=("conv2",), out_dir=tmp_path)


def test_integer_only_target_says_it_cannot_fall_back(digits, tmp_path):
    profile = strict_profile(tmp_path, allow_float_fallback=False)
    result = edgezoo.convert(digits, targets=(str(profile),), out_dir=tmp_path / "out")
    report = result.targets[0].report
    fallback = report["float_fallback"]
    assert not result.passed
    assert fallback["outcome"] == "forbidden by target" and not fallback["steps"]
    assert "integer ops only" in fallback["message"] and "snr_db" in fallback["message"]
    assert report["quantization_trace"]["advice"]  # what to do instead, from the traced figures
    with pytest.raises(TargetConstraintError, match="integer ops only") as caught:
        edgezoo.convert(digits, targets=(str(profile),), keep_float=("conv2",), out_dir=tmp_path / "kept")
    assert caught.value.exit_code == 3


def test_microcontroller_profile_forbids_float_fallback():
    assert edgezoo.resolve_profile("microcontroller").allow_float_fallback is False
    assert edgezoo.resolve_profile("phone").allow_float_fallback is True
