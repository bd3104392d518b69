"""TF.js graph models: the tensorflowjs converter, weight quantisation and shards, the op check, parity in Node."""

import json

import numpy as np
import pytest

from edgezoo.formats.tfjs import convert as tfjs
from edgezoo.formats.base import Quantization
from edgezoo.errors import TargetConstraintError, UsageError
from edgezoo.formats.tfjs import run_node as tfjs_node
from tests.edge_formats import assert_caught, convert, copy_artifact, log_gamma_model, parity, tampered_tfjs_copy, two_heads_parity

# TF.js weight type -> (edgezoo quantisation, the converter's options)
WEIGHT_MODES = {
    "none": (Quantization.FLOAT32, tfjs.Options()),
    "float16": (Quantization.FLOAT16, tfjs.Options()),
    "uint8": (Quantization.DYNAMIC_INT8, tfjs.Options(integer_weights="uint8")),
    "uint16": (Quantization.DYNAMIC_INT8, tfjs.Options(integer_weights="uint16")),
}


@pytest.fixture(scope="module")
def digits_tfjs(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("tfjs")
    return {mode: convert(digits, "tfjs", out / mode, quantization, options) for mode, (quantization, options) in WEIGHT_MODES.items()}


@pytest.fixture(scope="module")
def digits_node_parity(digits_tfjs, digits, digits_data):
    return {mode: parity(artifact, "tfjs-node", digits, digits_data.heldout, classifier=True) for mode, artifact in digits_tfjs.items()}


@pytest.mark.parametrize("mode", list(WEIGHT_MODES))
def test_every_weight_quantisation_passes_parity_in_node(digits_node_parity, digits_tfjs, mode):
    report = digits_node_parity[mode]
    assert report.passed, report.summary()
    assert report.runtime == "tfjs-node" and report.num_samples == 360
    assert report.outputs[0].metrics["top1_agreement"] >= 0.97
    assert digits_tfjs[mode].details["weight_quantization"] == mode


def test_quantised_weights_are_stored_as_asked(digits_tfjs):
    stored = {}
    for mode, artifact in digits_tfjs.items():
        manifest = json.loads(artifact.path.read_text())["weightsManifest"]
        kernels = [w for group in manifest for w in group["weights"] if w["dtype"] == "float32" and len(w["shape"]) > 1]
        stored[mode] = {w.get("quantization", {}).get("dtype", "none") for w in kernels}
    assert stored == {mode: {mode} for mode in WEIGHT_MODES}
    size = {mode: artifact.size_bytes for mode, artifact in digits_tfjs.items()}
    assert size["uint8"] < size["uint16"] < size["none"] and size["float16"] < 0.6 * size["none"]


def test_finer_weights_give_smaller_errors(digits_node_parity):
    error = {mode: report.outputs[0].metrics["max_abs_error"] for mode, report in digits_node_parity.items()}
    assert error["none"] < 1e-4
    assert error["none"] < error["uint16"] < error["uint8"]
    assert error["none"] < error["float16"] < error["uint8"]


def test_small_shards_split_the_weights(digits, tmp_path, digits_tfjs):
    artifact = convert(digits, "tfjs", tmp_path, options=tfjs.Options(shard_size_bytes=16 * 1024))
    shards = [f for f in artifact.files if f.suffix == ".bin"]
    assert len(shards) == artifact.details["shards"] > 3
    assert all(f.stat().st_size <= 16 * 1024 for f in shards)
    whole = b"".join(f.read_bytes() for f in digits_tfjs["none"].files if f.suffix == ".bin")
    assert b"".join(f.read_bytes() for f in shards) == whole


def test_keras_application_passes_parity_in_node(mobilenet_tfjs, mobilenet_v2):
    model, inputs = mobilenet_v2
    report = parity(mobilenet_tfjs, "tfjs-node", model, inputs, classifier=True)
    assert report.passed, report.summary()
    assert set(mobilenet_tfjs.ops) <= tfjs.supported_ops()


def test_tampered_shard_is_caught_in_node(mobilenet_tfjs, mobilenet_v2, tmp_path):
    model, inputs = mobilenet_v2
    assert_caught(parity(tampered_tfjs_copy(mobilenet_tfjs, tmp_path), "tfjs-node", model, inputs, classifier=True))


def test_truncated_shard_is_a_runtime_failure(digits_tfjs, digits, digits_data, tmp_path):
    broken = copy_artifact(digits_tfjs["none"], tmp_path)
    shard = next(f for f in broken.files if f.suffix == ".bin")
    shard.write_bytes(shard.read_bytes()[:1000])
    report = parity(broken, "tfjs-node", digits, digits_data.heldout, classifier=True)
    assert not report.passed
    assert "TF.js in Node" in report.error and "could not run" in report.error and report.exit_code == 4


def test_outputs_are_matched_by_name_not_position(tmp_path):
    _, report = two_heads_parity("tfjs", "tfjs-node", tmp_path)
    assert report.passed, report.summary()
    assert [o.name for o in report.outputs] == ["alpha", "zeta"]


def test_fixed_batch_model_runs_in_steps(tmp_path):
    _, report = two_heads_parity("tfjs", "tfjs-node", tmp_path, batch=1, count=7)
    assert report.passed and report.num_samples == 7, report.summary()


def test_node_runs_the_wasm_backend_too(digits_tfjs, digits_data):
    inputs = {"image": digits_data.heldout["image"][:40]}
    on_cpu = tfjs_node.run(digits_tfjs["none"], inputs)
    on_wasm = tfjs_node.run(digits_tfjs["none"], inputs, backend="wasm")
    assert np.abs(on_cpu["probabilities"] - on_wasm["probabilities"]).max() < 1e-5


def test_unsupported_op_is_refused_with_its_layer(tmp_path):
    model = log_gamma_model(tmp_path / "lgamma")
    with pytest.raises(TargetConstraintError) as caught:
        convert(model, "tfjs", tmp_path / "tfjs")
    assert caught.value.exit_code == 3
    assert "Lgamma (in log_gamma)" in str(caught.value)
    assert "Lgamma" not in tfjs.supported_ops() and "Conv2D" in tfjs.supported_ops()


def test_full_integer_quantisation_is_refused_for_tfjs(digits, tmp_path):
    with pytest.raises(UsageError, match="quantise weights only"):
        convert(digits, "tfjs", tmp_path, Quantization.INT8)

