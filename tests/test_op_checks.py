"""Op checks judge what the converter really emits: debug ops it strips never refuse a model; ops a
runtime lacks, or runs in float only in an int8 model, are refused (exit 3) with the op and layer named,
before conversion where that can be decided and from TFLM's own message where only the runtime can tell."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from edgezoo.formats import converter_for
from edgezoo.formats.tfjs import convert as tfjs
from edgezoo.formats.base import Artifact, ConversionRequest, Quantization
from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from edgezoo.errors import RuntimeFailure, TargetConstraintError
from edgezoo.targets import op_check, resolve_profile
from edgezoo.formats.tflite import tflm_ops
from edgezoo.validate import check_parity
from edgezoo.formats.tflite import run_tflm as tflm
from tests.conftest import REPO
from tests.edge_formats import assert_caught, convert, log_gamma_model, parity, reference, save_module, tampered_tfjs_copy

DEBUG_OPS = {"Assert", "CheckNumerics"}
FRAMES = 64


def spectrogram_model(folder: Path, batch: int | None = None):
    """A log-magnitude front end (MirrorPad, Conv2D, Square, Sqrt, Log) guarded by tf.debugging.Assert and
    check_numerics, then a sigmoid head: the structure of the audio model that TF.js was refused for."""
    from edgezoo import _tf

    tf = _tf.tf()

    class Spectrogram(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.filters = tf.Variable(rng.normal(size=(1, 8, 1, 4)).astype(np.float32))
            self.head = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))

        @tf.function
        def serve(self, waveform):
            waveform = tf.debugging.check_numerics(waveform, "the waveform has NaN or Inf")
            tf.debugging.Assert(tf.reduce_all(tf.abs(waveform) < 100.0), [waveform])
            frames = tf.pad(tf.reshape(waveform, [-1, 1, FRAMES, 1]), [[0, 0], [0, 0], [4, 3], [0, 0]], mode="REFLECT")
            with tf.name_scope("frontend"):
                spectrum = tf.nn.conv2d(frames, self.filters, strides=[1, 1, 2, 1], padding="VALID")
                log_magnitude = tf.math.log(tf.sqrt(tf.square(spectrum) + 1e-6) + 1e-3)
            tf.debugging.assert_all_finite(log_magnitude, "the spectrogram has NaN or Inf")
            with tf.name_scope("head"):
                return {"scores": tf.sigmoid(tf.matmul(tf.reduce_mean(log_magnitude, axis=[1, 2]), self.head))}

    return save_module(Spectrogram(), folder, tf.TensorSpec([batch, FRAMES], tf.float32, name="waveform"))


def waveforms(count: int, seed: int = 1) -> dict[str, np.ndarray]:
    return {"waveform": np.random.default_rng(seed).normal(size=(count, FRAMES)).astype(np.float32)}


@pytest.fixture(scope="session")
def spectrogram(tmp_path_factory):
    return spectrogram_model(tmp_path_factory.mktemp("spectrogram") / "saved_model")


@pytest.fixture(scope="session")
def spectrogram_tfjs(spectrogram, tmp_path_factory):
    return convert(spectrogram, "tfjs", tmp_path_factory.mktemp("spectrogram_tfjs"))


@pytest.fixture
def empty_int8_table(tmp_path, monkeypatch):
    """The op check pointed at a table that knows no kernel: only TFLM itself can then tell that LOG fails."""
    table = tmp_path / "tflm_int8_kernels.json"
    table.write_text(json.dumps({"tflite_micro_version": version("tflite-micro"), "kernels": {}}))
    monkeypatch.setattr(tflm_ops, "INT8_KERNELS_FILE", table)
    assert tflm_ops.float_only_ops() == frozenset()


def serving_graph_ops(model) -> set[str]:
    from edgezoo import _tf

    tf = _tf.tf()
    graph = tf.saved_model.load(str(model.saved_model_dir)).signatures[model.signature_key].graph.as_graph_def()
    return {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}


# --- TF.js: judged after the converter's graph optimisation ---------------------------------------------


def test_the_model_carries_assert_and_check_numerics_in_its_serving_graph(spectrogram):
    assert DEBUG_OPS <= serving_graph_ops(spectrogram)
    assert not DEBUG_OPS & tfjs.supported_ops()  # TF.js itself could not run them


def test_without_debug_stripping_the_produced_graph_keeps_them_and_is_refused(spectrogram, tmp_path):
    """The cause of the refusal: tensorflowjs' Python API strips debug ops only when asked (its CLI does by default)."""
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(spectrogram.saved_model_dir), str(tmp_path), signature_def="serving_default", saved_model_tags="serve", skip_op_check=True
    )
    model_json = json.loads((tmp_path / "model.json").read_text())
    assert {op for op, _ in tfjs.executed_nodes(model_json)} >= DEBUG_OPS  # on the path to the output: TF.js would run them
    with pytest.raises(TargetConstraintError, match="Assert .*CheckNumerics"):
        tfjs.check_ops(model_json, spectrogram.name)


def test_browser_converts_and_runs_in_tfjs_node_with_parity(spectrogram, spectrogram_tfjs, tmp_path):
    assert not DEBUG_OPS & set(spectrogram_tfjs.ops)
    assert {"Conv2D", "Log", "MirrorPad", "Sqrt", "Square"} <= set(spectrogram_tfjs.ops)
    inputs = waveforms(16)
    assert np.std(reference(spectrogram, inputs)["scores"], axis=0).min() > 1e-3  # outputs vary with the input
    report = parity(spectrogram_tfjs, "tfjs-node", spectrogram, inputs, classifier=False)
    assert report.passed, report.summary()
    assert_caught(parity(tampered_tfjs_copy(spectrogram_tfjs, tmp_path), "tfjs-node", spectrogram, inputs, classifier=False))


def test_only_nodes_tfjs_executes_are_judged(spectrogram_tfjs):
    model_json = json.loads(spectrogram_tfjs.path.read_text())
    tfjs.check_ops(model_json, "spectrogram")
    nodes = model_json["modelTopology"]["node"]
    nodes.append({"name": "log_gamma/Lgamma", "op": "Lgamma", "input": ["waveform"]})
    tfjs.check_ops(model_json, "spectrogram")  # nothing reaches it: TF.js never runs it
    output = next(node for node in nodes if node["name"] == "Identity")
    output["input"].append("^log_gamma/Lgamma")  # a control input: now TF.js runs it before the output
    with pytest.raises(TargetConstraintError, match=r"Lgamma \(in log_gamma\)") as caught:
        tfjs.check_ops(model_json, "spectrogram")
    assert caught.value.exit_code == 3


def test_a_genuinely_unsupported_tfjs_op_is_still_refused(tmp_path):
    with pytest.raises(TargetConstraintError, match=r"TF.js cannot run: Lgamma \(in log_gamma\)") as caught:
        convert(log_gamma_model(tmp_path / "lgamma"), "tfjs", tmp_path / "tfjs")
    assert caught.value.exit_code == 3


# --- ONNX and phone: judged on the produced model ---------------------------------------------------------


def test_onnx_converts_without_the_debug_ops_and_passes_parity(spectrogram, tmp_path):
    artifact = convert(spectrogram, "onnx", tmp_path)
    assert not DEBUG_OPS & set(artifact.ops) and {"Conv", "Log", "Sqrt"} <= set(artifact.ops)
    report = parity(artifact, "onnxruntime", spectrogram, waveforms(16), classifier=False)
    assert report.passed, report.summary()


def test_phone_converts_without_the_debug_ops_and_passes_parity(spectrogram, tmp_path):
    artifact = convert(spectrogram, "tflite", tmp_path, Quantization.FLOAT16)
    assert {"CONV_2D", "LOG", "MIRROR_PAD", "SQRT"} <= set(artifact.ops) and not any("Assert" in op for op in artifact.ops)
    inputs = waveforms(16)
    tolerance = resolve_profile("phone").tolerance_for(Quantization.FLOAT16)
    report = check_parity(artifact, "litert", inputs, reference(spectrogram, inputs), classifier=False, tolerance=tolerance)
    assert report.passed, report.summary()


# --- TFLM: kernel dtypes, before conversion and at run time -------------------------------------------------


def test_log_in_an_int8_microcontroller_model_is_refused_before_conversion(cli, spectrogram, tmp_path):
    started = time.monotonic()
    done = cli("convert", spectrogram.saved_model_dir, "--target", "microcontroller", "--out", tmp_path / "out")
    elapsed = time.monotonic() - started
    assert done.returncode == 3, done.stderr
    assert "needs LOG on int8" in done.stderr and "LOG (in frontend)" in done.stderr and "run in float only" in done.stderr
    assert "found before conversion" in done.stderr and "--keep-float frontend" in done.stderr and "phone-int8" in done.stderr
    assert "checking the model's ops and their int8 kernels against tflm before conversion" in done.stderr
    assert "converting to tflite" not in done.stderr and "int8 error" not in done.stderr  # no int8 conversion, no debugger
    assert "Traceback" not in done.stderr and not list((tmp_path / "out").rglob("*.tflite"))
    print(f"refused in {elapsed:.1f} s, CLI start included")


@pytest.fixture(scope="session")
def spectrogram_int8(spectrogram, tmp_path_factory):
    """The model converted to full-integer int8 with int8 input and output at batch 1, as for the microcontroller."""
    from edgezoo.calibration import synthetic
    from edgezoo.targets.static_shape import batch_shapes, fix_shapes

    model = fix_shapes(spectrogram, batch_shapes(spectrogram, 1))
    request = ConversionRequest(quantization=Quantization.INT8, calibration=synthetic(model), integer_io=True)
    return converter_for("tflite").convert(model, request, tmp_path_factory.mktemp("spectrogram_int8"))


def test_the_converted_int8_model_is_refused_for_its_int8_log(spectrogram_int8):
    log = next(node for node in read_flatbuffer(spectrogram_int8.path.read_bytes()).ops if node.op == "LOG")
    assert log.input_dtypes == ("int8",)
    with pytest.raises(TargetConstraintError, match=r"LOG \(in frontend\) \(read from the converted model\)"):
        op_check.check_artifact(spectrogram_int8, "tflm")


def test_a_tflm_invoke_failure_naming_a_node_becomes_a_target_error(empty_int8_table, spectrogram_int8):
    op_check.check_artifact(spectrogram_int8, "tflm")  # the empty table lets it through to the runtime
    log = next(node for node in read_flatbuffer(spectrogram_int8.path.read_bytes()).ops if node.op == "LOG")
    for attempt in (lambda: tflm.measure_arena(spectrogram_int8), lambda: tflm.run(spectrogram_int8, waveforms(2))):
        with pytest.raises(TargetConstraintError) as caught:
            attempt()
        message = str(caught.value)
        assert caught.value.exit_code == 3
        assert f"LOG kernel failed to invoke operator {log.index} of model.tflite, LOG on int8 input, in layer frontend" in message
        assert "INT8 != FLOAT32" in message and "--keep-float frontend" in message


def test_node_failures_are_read_from_the_last_attempt_only():
    marker = tflm.ATTEMPT_MARKER
    short = f"{marker} arena=4096\nFailed to allocate temp memory. Requested: 64\nNode LOG (number 3) failed to prepare with status 1\n"
    kernel = f"{marker} arena=65536\nexp.cc:41 input->type != kTfLiteFloat32\nNode EXP (number 7) failed to prepare with status 1\n"
    assert tflm.node_failure(short) is None  # the arena ran short: a bigger one may do
    assert tflm.node_failure(short + kernel) == tflm.NodeFailure("EXP", 7, "prepare", "exp.cc:41 input->type != kTfLiteFloat32")
    assert tflm.node_failure(kernel + short) is None
    assert tflm.node_failure(kernel.partition("\n")[2]).op == "EXP"  # no marker: the whole text is one attempt


# --- the probed table ---------------------------------------------------------------------------------------


def test_the_int8_table_was_probed_on_the_installed_tflite_micro():
    table = tflm_ops.int8_kernels()
    assert table["tflite_micro_version"] == version("tflite-micro"), (
        f"edgezoo/formats/tflite/tflm_int8_kernels.json was probed on tflite-micro {table['tflite_micro_version']}, but "
        f"{version('tflite-micro')} is installed. Regenerate it: {tflm_ops.PROBE_COMMAND}"
    )
    registered = tflm_ops.supported_ops() - set(tflm_ops.CUSTOM_OPS)
    assert set(table["kernels"]) == registered, f"the table does not cover TFLM's builtins; regenerate it: {tflm_ops.PROBE_COMMAND}"
    assert {entry["int8"] for entry in table["kernels"].values()} <= set(tflm_ops.INT8_STATUSES)


def test_the_table_knows_log_is_float_only_and_common_kernels_run_int8():
    kernels = tflm_ops.int8_kernels()["kernels"]
    assert {"LOG", "EXP"} <= tflm_ops.float_only_ops()
    assert all(kernels[op]["int8"] == "int8" for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "MEAN"))
    assert sum(entry["int8"] == "int8" for entry in kernels.values()) >= 50


def test_the_table_holds_on_the_installed_tflm(tmp_path):
    """Two of its entries probed again, live: LOG fails on int8 and runs on float32, CONV_2D runs on int8."""
    from edgezoo import _tf

    spec = importlib.util.spec_from_file_location("probe_tflm_int8_kernels", REPO / "scripts" / "probe_tflm_int8_kernels.py")
    probe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = probe  # its dataclasses look their module up there
    spec.loader.exec_module(probe)
    tf = _tf.tf()
    with _tf.quiet_native_output():
        log, conv = probe.probe(tf, "LOG", tmp_path), probe.probe(tf, "CONV_2D", tmp_path)
    assert log["int8"] == "float_only" and "INT8 != FLOAT32" in log["detail"]
    assert conv["int8"] == "int8"


def test_the_arena_of_a_tiny_model_is_measured_although_smaller_arenas_crash_tflm(tmp_path):
    """TFLM dereferences null (SIGSEGV) in FULLY_CONNECTED's Prepare when the arena cannot hold its temporaries;
    each bisection attempt runs in a forked copy, so the search goes on."""
    from edgezoo import _tf

    tf = _tf.tf()
    kernel = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    graph = tf.function(lambda x: tf.matmul(x, kernel), input_signature=[tf.TensorSpec((1, 16), tf.float32, name="x")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([graph.get_concrete_function()], graph)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.random.default_rng(i).normal(size=(1, 16)).astype(np.float32)] for i in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with _tf.quiet_native_output():
        (tmp_path / "model.tflite").write_bytes(converter.convert())
    output = read_flatbuffer((tmp_path / "model.tflite").read_bytes()).outputs[0].name
    artifact = Artifact("tflite", tmp_path / "model.tflite", (tmp_path / "model.tflite",), Quantization.INT8, ("x",), (output,))
    arena = tflm.measure_arena(artifact)
    assert 256 < arena < 4096
    inputs = {"x": np.zeros((1, 16), np.float32)}
    assert tflm.run(dataclasses.replace(artifact, details={"arena_bytes": arena}), inputs)[output].shape == (1, 8)
    with pytest.raises(RuntimeFailure, match=r"TFLM crashed \(SIGSEGV\)|failed to allocate"):
        tflm.run(dataclasses.replace(artifact, details={"arena_bytes": arena // 2}), inputs)
