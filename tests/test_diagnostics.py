"""Diagnostics never fail a target, and int8 measures every tensor dtype and shape (issue 23, items 1 and 2).

Two tiny models built here, once per session: `gates` has boolean and integer tensors inside (a comparison, tf.where, a
cast mask, an int32 from tf.shape), `dynamic` is a conv net with dynamic height and width (PReLU, odd sizes through
strided pooling, a valid convolution that cannot run at the default [1, 1, 1, 3] allocation). Their outputs vary with
the input. Then each diagnostic is made to raise: the target still publishes its artifact with its real verdict.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgezoo
from edgezoo import diagnostics as diag
from tests.edge_formats import save_module


def gates_model(folder, select: bool = True):
    """Boolean and integer tensors inside: a comparison, tf.where, a cast mask, a tf.shape-derived int; outputs vary."""
    from edgezoo import _tf
    tf = _tf.tf()

    class Gates(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(1)
            self.w1 = tf.Variable(rng.normal(size=(8, 16)).astype(np.float32) * 0.5)
            self.w2 = tf.Variable(rng.normal(size=(16, 3)).astype(np.float32) * 0.5)

        @tf.function
        def serve(self, features):
            hidden = tf.matmul(features, self.w1)
            positive = hidden > 0.1  # bool
            # tf.where becomes SELECT, which TFLM lacks: the microcontroller's variant gates by a cast mask instead
            gated = tf.where(positive, hidden, 0.2 * hidden) if select else hidden * (0.2 + 0.8 * tf.cast(positive, tf.float32))
            mask = tf.cast(features[:, :1] < 0.0, tf.float32)  # a cast mask
            width = tf.cast(tf.shape(hidden)[-1], tf.float32)  # an int32 from tf.shape
            logits = tf.matmul(gated, self.w2) * (1.0 + mask) / tf.sqrt(width)
            return {"probs": tf.sigmoid(logits)}

    return save_module(Gates(), folder, tf.TensorSpec([None, 8], tf.float32, name="features"))


def dynamic_conv_model(folder):
    """A conv net with dynamic height and width: PReLU, odd sizes through strided pooling."""
    from edgezoo import _tf
    import tf_keras as keras
    tf = _tf.tf()
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(4, 3)(x)  # valid: a [1, 1, 1, 3] default allocation cannot run it
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.AveragePooling2D(2, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(2, 1)(x)
    model = keras.Model(inputs, x)

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        @tf.function
        def serve(self, image):
            return {"map": self.net(image)}

    return save_module(Net(), folder, tf.TensorSpec([None, None, None, 3], tf.float32, name="image"))


@pytest.fixture(scope="session")
def gates(tmp_path_factory):
    return gates_model(tmp_path_factory.mktemp("gates") / "gates")


@pytest.fixture(scope="session")
def gates_masked(tmp_path_factory):
    return gates_model(tmp_path_factory.mktemp("gates-masked") / "gates-masked", select=False)


@pytest.fixture(scope="session")
def dynamic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dynamic")
    data = folder / "images.npz"
    np.savez(data, image=np.random.default_rng(0).normal(size=(20, 33, 45, 3)).astype(np.float32))
    return dynamic_conv_model(folder / "dynamic"), data


def _converted(model, out, target, **fields):
    result = edgezoo.convert(model, targets=(target,), out_dir=out, explain_quantization=True, **fields)
    (row,) = result.targets
    assert row.failure is None and row.output_dir is not None and row.artifact.path.exists()
    return row, json.loads((row.output_dir / "report.json").read_text())


def _measured_trace(report):
    trace = report["quantization_trace"]
    assert "status" not in trace, trace
    assert trace["layers_measured"] and trace["layers"]
    for figures in trace["outputs"].values():
        assert figures["total_snr_db"] is not None and figures["weights_snr_db"] is not None
    return trace


def test_outputs_vary_with_input(gates):
    from tests.edge_formats import reference

    inputs = {"features": np.random.default_rng(5).normal(size=(6, 8)).astype(np.float32)}
    probs = reference(gates, inputs)["probs"]
    assert np.ptp(probs, axis=0).min() > 0.05


@pytest.mark.parametrize("target, quantize", [("phone-int8", None), ("phone", "auto"), ("onnx", "int8")])
def test_bool_and_integer_tensors_are_calibrated_traced_and_measured(gates, tmp_path, target, quantize):
    row, report = _converted(gates, tmp_path, target, **({"quantize": quantize} if quantize else {}))
    assert row.exit_code in (0, 1) and "diagnostics" not in report
    if report["format"] == "tflite":
        _measured_trace(report)


def test_bool_and_integer_tensors_on_the_microcontroller(gates_masked, tmp_path):
    row, report = _converted(gates_masked, tmp_path, "microcontroller")
    assert row.exit_code in (0, 1) and report["parity"]["runtime"] == "tflm"
    assert "diagnostics" not in report
    assert "status" not in report["quantization_trace"]


def test_dynamic_height_and_width_are_resized_as_the_parity_runner_does(dynamic, tmp_path):
    model, data = dynamic
    row, report = _converted(model, tmp_path, "phone-int8", calibration=str(data))
    assert row.exit_code == 0 and "diagnostics" not in report
    trace = _measured_trace(report)
    assert trace["calibration_settled"] is not None  # the drift was measured on 20 samples


@pytest.mark.parametrize("target, fields", [
    ("onnx", {"quantize": "int8"}),
    ("microcontroller", {"input_shapes": (("image", (1, 33, 45, 3)),)}),  # TFLM needs static shapes: fixed first
])
def test_dynamic_height_and_width_on_the_onnx_quantiser_and_tflm(dynamic, tmp_path, target, fields):
    model, data = dynamic
    row, report = _converted(model, tmp_path, target, calibration=str(data), **fields)
    assert row.exit_code == 0 and "diagnostics" not in report
    if target == "microcontroller":
        _measured_trace(report)


def _boom(*args, **kwargs):
    raise RuntimeError("injected failure")


# Each diagnostic, by the function it runs and the name the report gives it.
INJECTED = [
    ("edgezoo.quantize.measure.trace", diag.TRACE),
    ("edgezoo.formats.tflite.selective.weight_only", diag.WEIGHTS),
    ("edgezoo.formats.tflite.selective.range_moved", diag.DRIFT),
    ("edgezoo.quantize.measure.layer_effects", diag.LAYERS),
    ("edgezoo.quantize.measure.with_solo_effects", diag.SOLO),
    ("edgezoo.quantize.loop.advise", diag.ADVICE),
    ("edgezoo.target_run.footprint", diag.FOOTPRINT),
    ("edgezoo.target_run.write_target_html", diag.HTML),
    ("edgezoo.target_run.placement_section", diag.PLACEMENT),
    ("edgezoo.reports.explorer.write_node_data", diag.EXPLORER),
]


@pytest.fixture(scope="session")
def gates_baseline(gates, tmp_path_factory):
    row, report = _converted(gates, tmp_path_factory.mktemp("baseline"), "phone-int8")
    return row, report


@pytest.mark.parametrize("where, name", INJECTED, ids=[name for _, name in INJECTED])
def test_a_failing_diagnostic_leaves_the_artifact_and_its_verdict(gates, gates_baseline, tmp_path, monkeypatch, where, name):
    from edgezoo.quantize.loop import summary_lines
    import jsonschema

    from edgezoo.reports.json_report import TARGET_REPORT_KIND, schema_for

    base_row, base = gates_baseline
    module, attribute = where.rsplit(".", 1)
    monkeypatch.setattr(f"{module}.{attribute}", _boom)
    row, report = _converted(gates, tmp_path, "phone-int8")
    assert (row.exit_code, row.passed) == (base_row.exit_code, base_row.passed)
    assert report["artifact"]["sha256"] == base["artifact"]["sha256"]
    assert report["parity"]["outputs"] == base["parity"]["outputs"]
    unavailable = {entry["name"]: entry["error"] for entry in report["diagnostics"]["unavailable"]}
    assert "injected failure" in unavailable[name]
    assert any(f"diagnostic unavailable: {name}" in line for line in summary_lines(report))
    if name == diag.TRACE:
        assert report["quantization_trace"]["status"] == "unavailable"
    jsonschema.validate(report, schema_for(TARGET_REPORT_KIND), cls=jsonschema.Draft202012Validator)


def test_a_diagnostic_that_never_ends_is_stopped_and_unavailable(gates, gates_baseline, tmp_path, monkeypatch):
    """A placement caught in an endless loop (as one was, on a graph with state tensors) is stopped at its time limit:
    the target publishes its artifact with its verdict, and the report says which diagnostic ran out of time."""
    import time

    def endless(*args, **kwargs):
        while True:
            time.sleep(0.01)

    base_row, base = gates_baseline
    monkeypatch.setattr(diag, "EXPLAIN_SECONDS", 1.0)
    monkeypatch.setattr("edgezoo.target_run.placement_section", endless)
    start = time.monotonic()
    row, report = _converted(gates, tmp_path, "phone-int8")
    assert time.monotonic() - start < 120  # the conversion's own time, and one second of the endless placement
    assert (row.exit_code, row.passed) == (base_row.exit_code, base_row.passed)
    assert report["artifact"]["sha256"] == base["artifact"]["sha256"]
    unavailable = {entry["name"]: entry["error"] for entry in report["diagnostics"]["unavailable"]}
    assert unavailable[diag.PLACEMENT] == "DiagnosticTimeout: stopped after 1 s, its time limit"
    assert report["placement"]["status"] == "unavailable"


def test_the_float_fallback_bisects_in_graph_order_when_the_ranking_is_unavailable(gates, tmp_path, monkeypatch):
    """int8 misses a strict tolerance (total SNR about 25 dB, most of it rounding the inputs and outputs, float I/O keeps
    it off): the fallback needs a ranking; with the per-layer effect failing it bisects over the ops nearest the outputs
    first, and says the ranking was not measured."""
    from tests.test_keep_float import strict_profile

    monkeypatch.setattr("edgezoo.quantize.measure.layer_effects", _boom)
    result = edgezoo.convert(gates, targets=(str(strict_profile(tmp_path)),), out_dir=tmp_path / "out")
    (row,) = result.targets
    assert row.failure is None and row.artifact.path.exists() and row.exit_code in (0, 1)
    fallback = row.report["float_fallback"]
    assert fallback["ranking_measured"] is False and fallback["ranking"] and fallback["steps"]
    assert {entry["name"] for entry in row.report["diagnostics"]["unavailable"]} >= {diag.LAYERS}
    assert row.report["quantization_trace"]["layers"] == []


def test_the_fallback_that_cannot_build_its_mixes_keeps_the_plain_artifact(gates, tmp_path, monkeypatch):
    from tests.test_keep_float import strict_profile

    monkeypatch.setattr("edgezoo.formats.tflite.selective.mixed_artifact", _boom)
    result = edgezoo.convert(gates, targets=(str(strict_profile(tmp_path)),), out_dir=tmp_path / "out")
    (row,) = result.targets
    assert row.failure is None and row.exit_code == 1 and row.artifact.path.exists()
    assert row.report["float_fallback"]["outcome"] == "could not run"
    assert "float fallback" in {entry["name"] for entry in row.report["diagnostics"]["unavailable"]}
