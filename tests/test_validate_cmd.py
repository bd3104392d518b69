"""`edgezoo validate SOURCE ARTIFACT` on artifacts made directly with the converters' own APIs (TFLiteConverter,
tf2onnx, tensorflowjs), not by edgezoo: the same metrics, reports and device bundle, and tampered files caught."""

from __future__ import annotations

import json
import shutil

import jsonschema
import pytest

from edgezoo import _tf
from edgezoo.formats.base import Quantization
from edgezoo.errors import UsageError
from edgezoo.targets import resolve_profile
from edgezoo.reports.json_report import TARGET_REPORT_KIND, schema_for
from edgezoo.validate.matching import plan_outputs
from edgezoo.validate_artifact import ValidateOptions, validate_artifact
from tests.tamper import tamper_onnx_weights, tamper_tflite_weights


@pytest.fixture(scope="module")
def made_elsewhere(tmp_path_factory, digits):
    """digits-cnn converted the way a user does without edgezoo: float32 and dynamic-range TFLite, and ONNX."""
    tf = _tf.tf()
    import tf2onnx

    folder = tmp_path_factory.mktemp("made_elsewhere")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(digits.saved_model_dir))
    with _tf.quiet_native_output():
        (folder / "digits_f32.tflite").write_bytes(converter.convert())
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        (folder / "digits_dynamic.tflite").write_bytes(converter.convert())
        loaded = tf.saved_model.load(str(digits.saved_model_dir))  # kept: the signature needs its variables alive
        function = loaded.signatures["serving_default"]

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
        def serve(image):
            return function(image=image)

        tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17, output_path=str(folder / "digits.onnx"))
    return folder


def test_validate_command_on_a_tflite_made_with_tfliteconverter(made_elsewhere, tmp_path, cli):
    done = cli("validate", "digits-cnn", made_elsewhere / "digits_f32.tflite", "--out", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    folder = tmp_path / "digits-cnn" / "validate-phone"
    assert result["passed"] and result["output_dir"] == str(folder)
    report = json.loads((folder / "report.json").read_text())
    jsonschema.validate(report, schema_for(TARGET_REPORT_KIND), cls=jsonschema.Draft202012Validator)
    assert report["quantization"] == "float32" and report["validated"]["quantization_detected"] == "float32"
    assert report["parity"]["runtime"] == "litert" and report["parity"]["outputs"][0]["name"] == "probabilities"
    assert report["parity"]["outputs"][0]["max_abs_error"] < 1e-4 and report["artifact"]["path"] == "digits_f32.tflite"
    assert (folder / "report.html").exists() and (folder / "digits_f32.tflite").exists()
    manifest = json.loads((folder / "device_check" / "tolerances.json").read_text())
    assert manifest["model"] == "../digits_f32.tflite" and (folder / "device_check" / "check_parity.py").exists()


def test_validate_fails_a_tampered_tflite(made_elsewhere, digits, tmp_path):
    tampered = tmp_path / "tampered.tflite"
    shutil.copyfile(made_elsewhere / "digits_f32.tflite", tampered)
    tamper_tflite_weights(tampered)
    result = validate_artifact(digits, tampered, ValidateOptions(out_dir=tmp_path / "out"))
    assert not result.passed and result.parity.outputs[0].violations
    report = json.loads((result.output_dir / "report.json").read_text())
    assert report["passed"] is False and "FAILED" in (result.output_dir / "report.html").read_text()


def test_validate_detects_dynamic_range_quantisation(made_elsewhere, digits, tmp_path):
    result = validate_artifact(digits, made_elsewhere / "digits_dynamic.tflite", ValidateOptions(out_dir=tmp_path))
    assert result.passed, result.parity.summary()
    assert result.artifact.quantization is Quantization.DYNAMIC_INT8
    phone = resolve_profile("phone").tolerance_for(Quantization.DYNAMIC_INT8)
    assert result.parity.tolerance == phone.without_detection_limits()  # not float32's; validate judges tensors, not detections
    forced = validate_artifact(digits, made_elsewhere / "digits_dynamic.tflite", ValidateOptions(out_dir=tmp_path, quantize="float32", force=True))
    assert not forced.passed  # held to float32's tolerance, the same file fails


def test_validate_an_onnx_model_made_with_tf2onnx(made_elsewhere, digits, tmp_path):
    result = validate_artifact(digits, made_elsewhere / "digits.onnx", ValidateOptions(out_dir=tmp_path))
    assert result.passed and result.target == "onnx" and result.parity.runtime == "onnxruntime", result.parity.summary()
    assert result.report["validated"]["inputs"] == {"image": "image"}
    assert result.parity.outputs[0].name == "probabilities" and result.parity.outputs[0].metrics["max_abs_error"] < 1e-4
    tampered = tmp_path / "tampered.onnx"
    shutil.copyfile(made_elsewhere / "digits.onnx", tampered)
    tamper_onnx_weights(tampered)
    assert not validate_artifact(digits, tampered, ValidateOptions(out_dir=tmp_path, force=True)).passed


def test_validate_refuses_what_it_cannot_check(made_elsewhere, digits, tmp_path):
    with pytest.raises(UsageError, match="takes onnx models"):
        validate_artifact(digits, made_elsewhere / "digits_f32.tflite", ValidateOptions(target="onnx", out_dir=tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    with pytest.raises(UsageError, match="not an artifact edgezoo can validate"):
        validate_artifact(digits, tmp_path / "weights.bin", ValidateOptions(out_dir=tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        validate_artifact(digits, tmp_path / "missing.tflite", ValidateOptions(out_dir=tmp_path))


def test_tensors_are_matched_by_name_then_by_shape():
    assert plan_outputs({"probs": (None, 10)}, {"Identity:0": (1, 10)}).in_order() == {"probs": "Identity:0"}
    two = {"boxes": (None, 4), "scores": (None, 10)}
    assert plan_outputs(two, {"out_a": (1, 10), "out_b": (1, 4)}).in_order() == {"boxes": "out_b", "scores": "out_a"}
    ambiguous = plan_outputs({"a": (None, 10), "b": (None, 10)}, {"x": (1, 10), "y": (1, 10)})
    assert ambiguous.groups == ((("a", "b"), ("x", "y")),)  # left to values (tests/test_validate_matching.py)
    with pytest.raises(UsageError, match="one to one"):
        plan_outputs({"a": (None, 10), "b": (None, 10)}, {"x": (1, 10)})
