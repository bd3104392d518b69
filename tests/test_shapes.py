"""Inputs with dynamic dimensions beyond the batch, and --input-shape / a profile's input_shapes that fix them.

The model is a tiny trained fully convolutional net taking [None, None, None, 3] (a per-pixel mask of a
learnable rule on the channels); its calibration data is 20 samples of 16x24x3. Runtimes that resize
(LiteRT, ONNX Runtime) run it as it is, at the data's size and at another; TFLM needs static shapes, so the
microcontroller refuses it with the --input-shape that matches the data, and runs it with that flag.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgezoo
from edgezoo.formats.base import Artifact, ConversionRequest, Quantization
from edgezoo.errors import CalibrationDataError, TargetProfileError, UsageError
from edgezoo.options import ConvertOptions

CALIBRATION_SIZE = (16, 24)


def _task(rng, count: int, height: int, width: int):
    x = rng.uniform(-1, 1, (count, height, width, 3)).astype(np.float32)
    y = (x[..., :1] + 0.5 * x[..., 1:2] > x[..., 2:3]).astype(np.float32)
    return x, y


@pytest.fixture(scope="session")
def fcn(tmp_path_factory):
    """(the loaded model, the calibration .npz path, the folder): 505 parameters, input 'image' [None, None, None, 3]."""
    from edgezoo import _tf

    tf, keras = _tf.tf(), _tf.tf_keras()
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(image)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    mask = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    model = keras.Model(image, mask, name="fcn")
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    model.fit(*_task(rng, 64, *CALIBRATION_SIZE), epochs=30, batch_size=16, verbose=0)
    folder = tmp_path_factory.mktemp("fcn")
    model.save(str(folder / "fcn"))
    calibration = folder / "calibration.npz"
    np.savez(calibration, image=_task(rng, 20, *CALIBRATION_SIZE)[0])
    loaded = edgezoo.load(str(folder / "fcn"))
    assert loaded.inputs[0].shape == (None, None, None, 3)
    return loaded, calibration, folder


def _input_signature(path) -> list[int]:
    from ai_edge_litert.interpreter import Interpreter

    return [int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape_signature"]]


def test_dynamic_model_converts_for_phone_phone_int8_onnx_and_a_fixed_profile(fcn, tmp_path):
    """The case that ended in "internal error: ValueError: Cannot set tensor: Dimension mismatch" for phone-int8."""
    model, calibration, _ = fcn
    fixed = tmp_path / "phone-fixed.toml"
    fixed.write_text('extends = "phone"\nquantization = "float32"\ninput_shapes = { image = [1, 16, 24, 3] }\n')
    result = edgezoo.convert(model, targets=("phone", "phone-int8", "onnx", str(fixed)), calibration=calibration, out_dir=tmp_path / "out",
                             explain_quantization=True)
    by_name = {t.target: t for t in result.targets}
    assert result.passed, {name: t.parity.summary() for name, t in by_name.items()}
    outputs = by_name["phone"].parity.outputs[0].metrics
    assert outputs["cosine"] > 0.999  # a trained net: outputs vary, so the agreement means something

    # Dynamic models stay dynamic where the runtime resizes; the profile's input_shapes fixed its artifact.
    assert _input_signature(by_name["phone"].artifact.path) == [-1, -1, -1, 3]
    assert _input_signature(by_name["phone-int8"].artifact.path) == [-1, -1, -1, 3]
    assert _input_signature(by_name["phone-fixed"].artifact.path) == [1, 16, 24, 3]
    assert by_name["phone"].report["artifact"]["input_shapes"] == {"image": [None, None, None, 3]}
    assert by_name["phone-fixed"].report["artifact"]["input_shapes"] == {"image": [1, 16, 24, 3]}
    # MACs exist for a size: none for the dynamic artifact, 16*24*(6*27 + 6*54 + 6) for the fixed one.
    assert by_name["phone"].report["footprint"]["macs"] is None and "dynamic" in by_name["phone"].report["footprint"]["note"]
    assert by_name["phone-fixed"].report["footprint"]["macs"] == 16 * 24 * (6 * 27 + 6 * 54 + 6)
    assert by_name["phone"].report["footprint"]["parameter_count"] == 505
    # The per-layer measurement (--explain-quantization) ran on the dynamic model: each layer of the net.
    layers = {layer["layer"] for layer in by_name["phone-int8"].report["quantization_trace"]["layers"]}
    assert {"fcn/conv1", "fcn/conv2", "fcn/mask"} <= layers

    # The on-device check of the dynamic phone artifact runs its golden inputs on LiteRT.
    check = by_name["phone-int8"].output_dir / "device_check" / "check_parity.py"
    done = subprocess.run([sys.executable, str(check), "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["passed"], done.stdout + done.stderr


def test_litert_and_onnxruntime_resize_to_a_second_input_size(fcn, tmp_path):
    """Parity at a size the model never saw in calibration: 40x56 on the dynamic artifacts, and a fixed artifact refuses it."""
    from edgezoo.targets import resolve_profile
    from edgezoo.validate import check_parity
    from edgezoo.zoo.reference import run_reference
    from tests.edge_formats import convert

    model, _, _ = fcn
    inputs = {"image": _task(np.random.default_rng(1), 3, 40, 56)[0]}
    reference = run_reference(model, inputs)
    tolerance = resolve_profile("phone").tolerance_for(Quantization.FLOAT32)
    for format_name, runtime in (("tflite", "litert"), ("onnx", "onnxruntime")):
        artifact = convert(model, format_name, tmp_path / format_name)
        parity = check_parity(artifact, runtime, inputs, reference, classifier=False, tolerance=tolerance)
        assert parity.passed, (runtime, parity.summary())
        assert parity.outputs[0].metrics["max_abs_error"] < 1e-5
    # The parity check can fail: the fixed artifact run on the wrong size is a clear data error, not a silent resize.
    from edgezoo.targets.static_shape import fix_shapes

    fixed = convert(fix_shapes(model, {"image": (1, 16, 24, 3)}), "tflite", tmp_path / "fixed")
    with pytest.raises(CalibrationDataError, match=r"input 'image' takes \[\?, 16, 24, 3\].*\[40, 56, 3\]"):
        check_parity(fixed, "litert", inputs, reference, classifier=False, tolerance=tolerance)


def test_selective_quantisation_and_layer_measurement_on_the_dynamic_model(fcn, tmp_path):
    """ai-edge-quantizer's int8 model, a layer kept in float, and the per-layer measurement, at two input sizes."""
    from edgezoo.calibration import load_calibration
    from edgezoo.formats.tflite import convert as tflite, precision as tflite_precision, selective as tflite_selective
    from edgezoo.quantize import measure
    from edgezoo.quantize.search import resolve_layers

    model, calibration, _ = fcn
    data = load_calibration(calibration, model)
    float32 = tflite.convert(model, ConversionRequest(Quantization.FLOAT32), tmp_path).path.read_bytes()
    ranges = tflite_selective.calibrate(float32, data)
    full = tflite_selective.quantize(float32, ranges)
    samples = measure.samples_of(data.heldout)
    layers = measure.layer_effects(float32, full, samples)
    assert {"fcn/conv1", "fcn/conv2", "fcn/mask"} <= {layer.layer for layer in layers}
    assert all(layer.snr_db < 300 for layer in layers)
    kept = resolve_layers(("conv2",), tflite_selective.op_sites(float32))
    mixed = tflite_selective.quantize(float32, ranges, float_ops=kept)
    precision = {op.layer: op.precision for op in tflite_precision.op_precisions(mixed) if op.computes}
    assert precision["fcn/conv2"] == "float32" and precision["fcn/conv1"] == "int8"
    rng = np.random.default_rng(2)
    for shape in ((2, 16, 24), (1, 48, 64)):
        x = _task(rng, *shape)[0]
        (out,) = measure.float_outputs(mixed, [{"image": x}])[0].values()
        assert out.shape == (*shape, 1) and 0.0 <= out.min() and out.max() <= 1.0


def test_set_inputs_resizes_a_plain_interpreter_up_and_down(fcn):
    from ai_edge_litert.interpreter import Interpreter

    from edgezoo.formats.tflite.convert import set_inputs
    from edgezoo.zoo.reference import run_reference
    from tests.edge_formats import convert

    model, _, _ = fcn
    artifact = convert(model, "tflite", fcn[2] / "plain-interpreter")
    interpreter = Interpreter(model_path=str(artifact.path))
    interpreter.allocate_tensors()  # allocated at [1, 1, 1, 3]
    rng = np.random.default_rng(3)
    for height, width in ((48, 64), (16, 24), (48, 64)):
        image = _task(rng, 1, height, width)[0]
        set_inputs(interpreter, [image])
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(out, run_reference(model, {"image": image})["mask"], atol=1e-5)
    with pytest.raises(ValueError, match=r"takes \[\?, \?, \?, 3\], not \[1, 8, 8, 4\]"):
        set_inputs(interpreter, [np.zeros((1, 8, 8, 4), np.float32)])


def test_microcontroller_refuses_dynamic_dims_naming_the_calibration_shape(fcn, cli, tmp_path):
    _, calibration, folder = fcn
    done = cli("convert", folder / "fcn", "--target", "microcontroller", "--calibration", calibration, "--out", tmp_path)
    assert done.returncode == 3, done.stderr
    assert "'image' [?, ?, ?, 3]" in done.stderr and "needs static shapes" in done.stderr
    assert "--input-shape image=1,16,24,3 (the shape of the calibration data)" in done.stderr
    assert "internal error" not in done.stderr


def test_microcontroller_and_phone_with_input_shape(fcn, cli, tmp_path):
    _, calibration, folder = fcn
    done = cli("convert", folder / "fcn", "--target", "microcontroller", "--target", "phone", "--calibration", calibration,
               "--input-shape", "1,16,24,3", "--out", tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    reports = {t["target"]: t["report"] for t in result["targets"]}
    assert reports["microcontroller"]["parity"]["runtime"] == "tflm" and reports["microcontroller"]["passed"]
    for target in ("microcontroller", "phone"):
        assert reports[target]["artifact"]["input_shapes"] == {"image": [1, 16, 24, 3]}
        assert _input_signature(tmp_path / "fcn" / target / "model.tflite") == [1, 16, 24, 3]
    assert reports["microcontroller"]["artifact"]["arena_bytes"] > 0


def test_bad_input_shape_on_the_command_line_is_exit_2(fcn, cli, tmp_path):
    _, calibration, folder = fcn
    done = cli("convert", folder / "fcn", "--target", "phone", "--calibration", calibration, "--input-shape", "image=1,16,24,4",
               "--out", tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--input-shape image=1,16,24,4 contradicts input 'image' of fcn, [?, ?, ?, 3]: its dimension 3 is 3" in done.stderr
    assert "internal error" not in done.stderr and not (tmp_path / "fcn").exists()


@pytest.mark.parametrize("shapes, error, message", [
    (["image=1,16,24"], UsageError, r"--input-shape image=1,16,24: input 'image' of fcn has rank 4 \[\?, \?, \?, 3\]"),
    (["picture=1,16,24,3"], UsageError, r"fcn has no input 'picture'; its inputs: image \[\?, \?, \?, 3\]"),
    (["image=1,0,24,3"], UsageError, r"image=1,0,24,3: every dimension of input 'image' must be at least 1"),
    (["image=1,-16,24,3"], UsageError, r"must be at least 1"),
    (["image=1,x,24,3"], UsageError, r"--input-shape takes NAME=D0,D1,\.\.\."),
    (["image=1,16,24,3", "image=1,8,8,3"], UsageError, r"more than one shape"),
    (["image=1,32,48,3"], CalibrationDataError, r"samples of shape \[16, 24, 3\].*fixes the input to \[1, 32, 48, 3\] \(--input-shape\)"),
])
def test_input_shapes_that_do_not_fit_are_clear_errors(fcn, tmp_path, shapes, error, message):
    model, calibration, _ = fcn
    with pytest.raises(error, match=message):
        edgezoo.convert(model, targets=("phone",), calibration=calibration, input_shapes=shapes, out_dir=tmp_path)


def test_input_shapes_in_options_and_profiles(tmp_path):
    assert ConvertOptions(input_shapes=["image=1,48,64,3"]).input_shapes == (("image", (1, 48, 64, 3)),)
    assert ConvertOptions(input_shapes={"a": [1, 8], "b": (1, 4)}).input_shapes == (("a", (1, 8)), ("b", (1, 4)))
    assert ConvertOptions(input_shapes=(1, 48, 64, 3)).input_shapes == (("", (1, 48, 64, 3)),)
    with pytest.raises(UsageError, match="without a name is for a model with one input"):
        ConvertOptions(input_shapes=["1,2", "b=1,2"])
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "microcontroller"\ninput_shapes = { image = [1, 0, 3], other = "1,2", third = [2, 8] }\n')
    with pytest.raises(TargetProfileError) as caught:
        edgezoo.resolve_profile(str(bad))
    text = str(caught.value)
    assert "'image' must be a list of sizes of at least 1" in text and "'other' must be a list" in text
    assert "'third' has a batch of 2, but fixed_batch is 1" in text
    good = tmp_path / "good.toml"
    good.write_text('extends = "microcontroller"\ninput_shapes = { image = [1, 48, 64, 3] }\n')
    profile = edgezoo.resolve_profile(str(good))
    assert profile.input_shapes == (("image", (1, 48, 64, 3)),)
    assert profile.to_json()["input_shapes"] == {"image": [1, 48, 64, 3]}


def test_bench_of_a_dynamic_artifact_needs_a_size_without_golden_inputs(fcn, tmp_path):
    from edgezoo.validate.latency import BenchOptions, bench
    from tests.edge_formats import convert

    model, _, _ = fcn
    artifact: Artifact = convert(model, "tflite", tmp_path / "tflite")
    with pytest.raises(UsageError, match=r"dynamic dimensions \('image' \[\?, \?, \?, 3\]\).*--input-shape"):
        bench(artifact.path, BenchOptions(runs=2, warmup=0, threads=1, original=False))
    result = bench(artifact.path, BenchOptions(runs=2, warmup=0, threads=1, original=False, input_shapes=["image=1,20,28,3"]))
    assert result.sample == {"image": [1, 20, 28, 3]} and len(result.measurements[0].times_ms) == 2
    shutil.rmtree(tmp_path / "tflite")
