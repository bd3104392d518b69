"""The phone target through the Python API: real TFLite conversion, real LiteRT parity, report.json."""

import dataclasses
import json

import numpy as np
import pytest

import edgezoo
from edgezoo.formats.base import Quantization
from edgezoo.output import _umask
from edgezoo.targets import resolve_profile
from edgezoo.validate import check_parity
from edgezoo.zoo.reference import run_reference
from tests.tamper import tamper_tflite_weights

REPORT_KEYS = {"schema_version", "model", "target", "format", "quantization", "artifact", "parity"}
OUTPUT_KEYS = {"name", "kind", "max_abs_error", "mean_abs_error", "rmse", "cosine", "snr_db", "relative_l2_error",
               "max_error_over_range", "top1_agreement"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, digits):
    """digits-cnn converted once per quantisation mode."""
    results = {}
    for quantization in Quantization:
        out = tmp_path_factory.mktemp(quantization.value)
        results[quantization] = edgezoo.convert(digits, target="phone", out_dir=out, quantize=quantization).targets[0]
    return results


@pytest.mark.parametrize("quantization", list(Quantization), ids=lambda q: q.value)
def test_every_quantisation_passes_parity_on_litert(converted, quantization):
    result = converted[quantization]
    assert result.passed, result.parity.summary()
    assert result.parity.runtime == "litert" and result.parity.num_samples == 360
    assert result.artifact.path == result.output_dir / "model.tflite" and result.artifact.path.exists()
    metrics = result.parity.outputs[0].metrics
    assert metrics["top1_agreement"] >= 0.97


def test_quantisation_shrinks_the_model(converted):
    size = {q: converted[q].artifact.size_bytes for q in Quantization}
    assert size[Quantization.FLOAT16] < 0.6 * size[Quantization.FLOAT32]
    assert size[Quantization.INT8] < 0.35 * size[Quantization.FLOAT32]
    assert size[Quantization.DYNAMIC_INT8] < 0.35 * size[Quantization.FLOAT32]


def test_full_integer_model_uses_integer_kernels(converted):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(converted[Quantization.INT8].artifact.path))
    kernel_types = {d["dtype"] for d in interpreter.get_tensor_details() if d["name"].endswith("Conv2D") or "conv" in d["name"].lower()}
    assert np.int8 in kernel_types


def test_report_json_has_the_documented_fields(converted):
    result = converted[Quantization.FLOAT16]
    report = json.loads((result.output_dir / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["schema_version"] == 1
    assert report["model"]["name"] == "digits-cnn" and report["model"]["source"] == "bundled:digits-cnn"
    assert len(report["model"]["sha256"]) == 64
    assert (report["target"], report["format"], report["quantization"]) == ("phone", "tflite", "float16")
    artifact = report["artifact"]
    assert artifact["path"] == "model.tflite"
    assert artifact["size_bytes"] == (result.output_dir / "model.tflite").stat().st_size
    assert artifact["sha256"] == result.artifact.sha256
    parity = report["parity"]
    assert parity["passed"] is True and parity["runtime"] == "litert" and parity["num_samples"] == 360
    (output,) = parity["outputs"]
    assert OUTPUT_KEYS <= set(output) and output["name"] == "probabilities"
    assert 0 < output["max_abs_error"] < 1e-2 and output["cosine"] > 0.9999 and output["kind"] == "class scores"


def test_no_staging_folders_left_behind(converted):
    for result in converted.values():
        leftovers = [p.name for p in result.output_dir.parent.iterdir() if p.name.startswith(".")]
        assert leftovers == [] and result.output_dir.is_dir()
        assert result.output_dir.stat().st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's private 0700


def test_tampered_weights_are_caught(converted, digits, digits_data, tmp_path):
    original = converted[Quantization.FLOAT32].artifact
    tampered_path = tmp_path / "model.tflite"
    tampered_path.write_bytes(original.path.read_bytes())
    tamper_tflite_weights(tampered_path)
    tampered = dataclasses.replace(original, path=tampered_path, files=(tampered_path,))
    reference = run_reference(digits, digits_data.heldout)
    tolerance = resolve_profile("phone").tolerance_for(Quantization.FLOAT32)

    good = check_parity(original, "litert", digits_data.heldout, reference, classifier=True, tolerance=tolerance)
    bad = check_parity(tampered, "litert", digits_data.heldout, reference, classifier=True, tolerance=tolerance)
    assert good.passed
    assert not bad.passed
    assert bad.outputs[0].metrics["top1_agreement"] < 0.9
    violated = {v.split()[0] for v in bad.outputs[0].violations}
    assert {"snr_db", "max_error_over_range", "top1_agreement"} <= violated  # the scale-free limits catch it


def test_nan_outputs_fail_parity():
    from edgezoo.targets import Tolerance
    from edgezoo.validate import compare_outputs

    reference = {"y": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)}
    candidate = {"y": np.array([[np.nan, 0.9], [0.8, 0.2]], np.float32)}
    report = compare_outputs(reference, candidate, classifier=True, tolerance=Tolerance(max_abs_error=1.0), runtime="test")
    assert not report.passed
    assert "non-finite" in report.outputs[0].violations[0]


def test_same_inputs_give_the_same_artifact(digits, tmp_path):
    first = edgezoo.convert(digits, target="phone", out_dir=tmp_path / "a", quantize="float32").targets[0]
    second = edgezoo.convert(digits, target="phone", out_dir=tmp_path / "b", quantize="float32").targets[0]
    assert first.artifact.sha256 == second.artifact.sha256


def test_user_calibration_file_feeds_int8(digits, digits_data, tmp_path):
    data = np.concatenate([digits_data.calibration["image"], digits_data.heldout["image"]])
    np.savez(tmp_path / "calib.npz", image=data)
    result = edgezoo.convert(digits, target="phone", out_dir=tmp_path / "out", quantize="int8", calibration=tmp_path / "calib.npz")
    target = result.targets[0]
    assert target.passed, target.parity.summary()
    assert target.report["calibration"]["origin"] == "user"
    assert target.report["calibration"]["num_heldout"] + target.report["calibration"]["num_calibration"] == len(data)


def test_strict_tolerance_fails_parity_but_keeps_the_evidence(digits, tmp_path):
    profile = tmp_path / "strict.toml"
    profile.write_text(
        'name = "strict"\nformat = "tflite"\nruntime = "litert"\nquantization = "float16"\n'
        "[tolerances.float16]\nmax_abs_error = 1e-9\n"
    )
    result = edgezoo.convert(digits, target=str(profile), out_dir=tmp_path / "out")
    assert not result.passed
    report = json.loads((result.targets[0].output_dir / "report.json").read_text())
    assert report["parity"]["passed"] is False
    assert "max_abs_error" in report["parity"]["outputs"][0]["violations"][0]


def test_nan_metrics_violate_every_limit():
    from edgezoo.targets import Tolerance

    tolerance = Tolerance(max_abs_error=0.1, min_cosine=0.9, min_snr_db=10.0, min_top1_agreement=0.9)
    nan = float("nan")
    violations = tolerance.violations({"max_abs_error": nan, "cosine": nan, "snr_db": nan, "top1_agreement": nan})
    assert len(violations) == 4
