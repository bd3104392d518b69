"""The onnx target: tf2onnx conversion, onnx.checker, names kept, float16 weights, parity on ONNX Runtime."""

import dataclasses
import json

import numpy as np
import onnx
import pytest

import edgezoo
from edgezoo.formats.onnx import convert as onnx_converter
from edgezoo.formats.base import Quantization
from edgezoo.errors import TargetConstraintError, TargetProfileError
from tests.edge_formats import assert_caught, convert, log_gamma_model, parity, two_heads_parity
from tests.tamper import tamper_onnx_weights


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory, digits):
    """digits-cnn through the onnx target, float32 and float16."""
    out = tmp_path_factory.mktemp("onnx")
    return {q: edgezoo.convert(digits, target="onnx", out_dir=out / q.value, quantize=q).targets[0] for q in (Quantization.FLOAT32, Quantization.FLOAT16)}


@pytest.fixture(scope="module")
def mobilenet_onnx(tmp_path_factory, mobilenet_v2):
    model, _ = mobilenet_v2
    return convert(model, "onnx", tmp_path_factory.mktemp("mobilenet_onnx"))


@pytest.mark.parametrize("quantization", [Quantization.FLOAT32, Quantization.FLOAT16], ids=lambda q: q.value)
def test_digits_passes_parity_on_onnxruntime(digits_onnx, quantization):
    result = digits_onnx[quantization]
    assert result.passed, result.parity.summary()
    assert result.parity.runtime == "onnxruntime" and result.parity.num_samples == 360
    assert result.artifact.path == result.output_dir / "model.onnx"
    metrics = result.parity.outputs[0].metrics
    assert metrics["top1_agreement"] == 1.0 and metrics["cosine"] > 0.9999
    report = json.loads((result.output_dir / "report.json").read_text())
    assert (report["target"], report["format"], report["quantization"]) == ("onnx", "onnx", quantization.value)
    assert report["parity"]["passed"] and report["artifact"]["opset"] == 17 and report["artifact"]["batch"] == "batch"


def test_model_passes_the_checker_and_keeps_signature_names(digits_onnx):
    proto = onnx.load(str(digits_onnx[Quantization.FLOAT32].artifact.path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    assert not onnx_converter.unconverted_nodes(proto)


def test_float16_weights_halve_the_file_and_stay_float_at_the_interface(digits_onnx):
    small, full = digits_onnx[Quantization.FLOAT16].artifact, digits_onnx[Quantization.FLOAT32].artifact
    assert small.size_bytes < 0.6 * full.size_bytes
    proto = onnx.load(str(small.path))
    types = {t.data_type for t in proto.graph.initializer if int(np.prod(t.dims)) >= onnx_converter.MIN_FLOAT16_ELEMENTS}
    assert onnx.TensorProto.FLOAT16 in types and onnx.TensorProto.FLOAT not in types
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # float16 weights really change the numbers (the comparison is not vacuous), within the float16 tolerance
    errors = {q: digits_onnx[q].parity.outputs[0].metrics["max_abs_error"] for q in digits_onnx}
    assert errors[Quantization.FLOAT32] < errors[Quantization.FLOAT16] < 1e-2


def test_keras_application_passes_parity(mobilenet_onnx, mobilenet_v2):
    model, inputs = mobilenet_v2
    report = parity(mobilenet_onnx, "onnxruntime", model, inputs, classifier=True)
    assert report.passed, report.summary()
    assert {"Conv", "Clip"} <= set(mobilenet_onnx.ops)


def test_tampered_weights_are_caught(mobilenet_onnx, mobilenet_v2, tmp_path):
    model, inputs = mobilenet_v2
    tampered_path = tmp_path / "model.onnx"
    tampered_path.write_bytes(mobilenet_onnx.path.read_bytes())
    tamper_onnx_weights(tampered_path)
    onnx.checker.check_model(str(tampered_path))  # still a valid model: only parity can tell
    tampered = dataclasses.replace(mobilenet_onnx, path=tampered_path, files=(tampered_path,))
    assert_caught(parity(tampered, "onnxruntime", model, inputs, classifier=True))


def test_outputs_are_matched_by_name_not_position(tmp_path):
    artifact, report = two_heads_parity("onnx", "onnxruntime", tmp_path)
    assert report.passed, report.summary()
    assert [o.name for o in report.outputs] == ["alpha", "zeta"]
    assert sorted(o.name for o in onnx.load(str(artifact.path)).graph.output) == ["alpha", "zeta"]


def test_fixed_batch_stays_fixed_and_runs_in_steps(tmp_path):
    artifact, report = two_heads_parity("onnx", "onnxruntime", tmp_path, batch=1, count=7)
    assert artifact.details["batch"] == 1
    assert report.passed and report.num_samples == 7, report.summary()


def test_opset_and_fixed_batch_come_from_the_profile(tmp_path, digits):
    profile = tmp_path / "onnx13.toml"
    profile.write_text('extends = "onnx"\nname = "onnx13"\nfixed_batch = 1\n[format_options]\nopset = 13\n')
    result = edgezoo.convert(digits, target=str(profile), out_dir=tmp_path / "out").targets[0]
    assert result.passed, result.parity.summary()
    proto = onnx.load(str(result.artifact.path))
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 13
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert result.report["artifact"]["batch"] == 1 and result.parity.num_samples == 360


def test_unknown_opset_is_a_profile_error(tmp_path):
    profile = tmp_path / "bad.toml"
    profile.write_text('extends = "onnx"\nname = "bad"\n[format_options]\nopset = 99\n')
    with pytest.raises(TargetProfileError, match="opset must be a whole number from 11 to 18"):
        edgezoo.resolve_profile(str(profile))


def test_unsupported_op_is_refused_with_its_layer(tmp_path):
    model = log_gamma_model(tmp_path / "lgamma")
    with pytest.raises(TargetConstraintError) as caught:
        convert(model, "onnx", tmp_path / "onnx")
    assert caught.value.exit_code == 3
    assert "Lgamma (in log_gamma)" in str(caught.value)
