"""The microcontroller target on TensorFlow Lite Micro: int8 with a fixed batch, ops checked before
conversion, flash and RAM budgets, parity on TFLM in a child process, and C sources that compile."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np

import pytest

import edgezoo
from edgezoo.formats.base import ConversionRequest, Quantization
from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from edgezoo.errors import RuntimeFailure, TargetConstraintError
from edgezoo.targets import resolve_profile
from edgezoo.formats.tflite import tflm_ops
from edgezoo.validate import check_parity
from edgezoo.formats.tflite import run_tflm as tflm
from edgezoo.zoo.reference import run_reference

MOBILENET_INPUT = (32, 32, 3)


@pytest.fixture(scope="module")
def digits_mcu(tmp_path_factory, digits):
    return edgezoo.convert(digits, target="microcontroller", out_dir=tmp_path_factory.mktemp("mcu")).targets[0]


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """tf_keras' MobileNet (alpha 0.25, 32x32, no weights) saved with a dynamic batch, and 100 inputs for it.

    Returns the folder with `images.npz`, `untrained/` (as built) and `saved_model/`. Untrained, its
    activations fade layer after layer: the softmax comes out constant and its int8 model makes
    TFLM abort. One forward pass in training mode with momentum 0 then sets every BatchNormalization
    to the statistics of real inputs, so that the outputs of `saved_model/` vary with the input.
    """
    from edgezoo import _tf

    tf, keras = _tf.tf(), _tf.tf_keras()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(input_shape=MOBILENET_INPUT, alpha=0.25, weights=None, classes=10)
    images = np.random.default_rng(0).random((100, *MOBILENET_INPUT), dtype=np.float32)
    folder = tmp_path_factory.mktemp("mobilenet")
    serve = tf.function(lambda image: {"probabilities": model(image, training=False)})
    signature = serve.get_concrete_function(tf.TensorSpec((None, *MOBILENET_INPUT), tf.float32, name="image"))
    with _tf.quiet_native_output():
        tf.saved_model.save(model, str(folder / "untrained"), signatures={"serving_default": signature})
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(images[:64], training=True)
    with _tf.quiet_native_output():
        tf.saved_model.save(model, str(folder / "saved_model"), signatures={"serving_default": signature})
    np.savez(folder / "images.npz", image=images)
    return folder


def tamper_int8_weights(path: Path) -> None:
    """Reverse the largest int8 weight buffer of a .tflite: still a valid model, now a wrong one."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    int8 = 9  # TensorType.INT8 in the TFLite schema
    buffers = {t.buffer for sub in model.subgraphs for t in sub.tensors if t.type == int8}
    largest = max((i for i in buffers if model.buffers[i].data is not None), key=lambda i: len(model.buffers[i].data))
    model.buffers[largest].data = np.ascontiguousarray(model.buffers[largest].data[::-1])
    flatbuffer_utils.write_model(model, str(path))


# --- the bundled model within the default budgets ----------------------------------------------


def test_digits_runs_on_tflm_as_full_integer_batch_one_within_the_default_budgets(digits_mcu):
    assert digits_mcu.passed, digits_mcu.parity.summary()
    assert digits_mcu.parity.runtime == "tflm" and digits_mcu.parity.num_samples == 360
    top1 = digits_mcu.parity.outputs[0].metrics["top1_agreement"]
    assert top1 >= 0.97  # int8 on TFLM against the float original, over the held-out split

    model = read_flatbuffer(digits_mcu.artifact.path.read_bytes())
    (image,), (probabilities,) = model.inputs, model.outputs
    assert (image.name, image.dtype, image.shape, image.shape_signature) == ("image", "int8", (1, 8, 8, 1), (1, 8, 8, 1))
    assert (probabilities.name, probabilities.dtype) == ("probabilities", "int8")
    assert set(model.op_names) <= tflm_ops.supported_ops()

    mcu = resolve_profile("microcontroller")
    details = digits_mcu.artifact.details
    assert 0 < digits_mcu.artifact.size_bytes <= mcu.max_model_bytes
    assert 0 < details["arena_bytes_measured"] < details["arena_bytes"] <= mcu.max_arena_bytes
    assert details["arena_bytes"] % 16 == 0 and details["arena_bytes"] >= details["arena_bytes_measured"] * 1.1


def test_the_measured_arena_is_the_smallest_that_runs(digits_mcu, digits_data):
    artifact = digits_mcu.artifact
    measured = artifact.details["arena_bytes_measured"]
    sample = {"image": digits_data.heldout["image"][:2]}
    tight = dataclasses.replace(artifact, details={**artifact.details, "arena_bytes": measured})
    assert tflm.run(tight, sample)["probabilities"].shape == (2, 10)
    short = dataclasses.replace(artifact, details={**artifact.details, "arena_bytes": measured - 64})
    with pytest.raises(RuntimeFailure, match="failed to allocate"):
        tflm.run(short, sample)


def test_report_states_the_footprint_and_int8_parity_on_tflm(digits_mcu):
    report = json.loads((digits_mcu.output_dir / "report.json").read_text())
    footprint = report["footprint"]
    assert footprint["ops_used"] == ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE", "SOFTMAX"]
    # conv1 3x3x1x16, conv2 3x3x16x32, dense 512x64, logits 64x10, with biases; MACs of one 8x8 image
    assert footprint["parameter_count"] == 160 + 4640 + 32832 + 650
    assert footprint["macs"] == 8 * 8 * 16 * 9 + 8 * 8 * 32 * 9 * 16 + 512 * 64 + 64 * 10
    assert footprint["model_size_bytes"] == digits_mcu.artifact.size_bytes
    assert footprint["arena_bytes"] == digits_mcu.artifact.details["arena_bytes"]
    assert report["parity"]["runtime"] == "tflm" and report["parity"]["outputs"][0]["top1_agreement"] >= 0.97
    assert report["target_profile"]["fixed_batch"] == 1 and report["artifact"]["c_sources"]


def test_a_tampered_artifact_is_caught_on_tflm(digits_mcu, digits, digits_data, tmp_path):
    tampered_path = tmp_path / "model.tflite"
    shutil.copy(digits_mcu.artifact.path, tampered_path)
    tamper_int8_weights(tampered_path)
    tampered = dataclasses.replace(digits_mcu.artifact, path=tampered_path, files=(tampered_path,))
    reference = run_reference(digits, digits_data.heldout)
    tolerance = resolve_profile("microcontroller").tolerance_for(Quantization.INT8)
    parity = check_parity(tampered, "tflm", digits_data.heldout, reference, classifier=True, tolerance=tolerance)
    assert not parity.passed and parity.error is None
    assert parity.outputs[0].metrics["top1_agreement"] < 0.5


# --- C sources for firmware -------------------------------------------------------------------

# Minimal declarations of the TFLM types model_ops.h uses (the TFLM headers are not installed): the
# real Add* method names, and a resolver that refuses more registrations than its template size.
RESOLVER_STUB = textwrap.dedent(
    """
    #pragma once
    enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
    namespace tflite {
    template <unsigned int tOpCount>
    class MicroMutableOpResolver {
     public:
      unsigned int GetRegistrationLength() const { return count_; }
    #define EDGEZOO_OP(NAME) TfLiteStatus NAME() { return Add(#NAME); }
      %s
    #undef EDGEZOO_OP
     private:
      TfLiteStatus Add(const char*) {
        if (count_ >= tOpCount) return kTfLiteError;
        ++count_;
        return kTfLiteOk;
      }
      unsigned int count_ = 0;
    };
    }  // namespace tflite
    """
)
# The Add methods of tflite::MicroMutableOpResolver for the ops of the models these tests build.
RESOLVER_METHODS = ("AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddMaxPool2D", "AddAveragePool2D", "AddReshape",
                    "AddSoftmax", "AddMean", "AddPad", "AddRelu6", "AddQuantize", "AddDequantize", "AddAdd", "AddMul")

FIRMWARE_MAIN = textwrap.dedent(
    """
    #include <cstdint>
    #include <cstdio>
    #include "model_data.h"
    #include "model_ops.h"

    alignas(16) static uint8_t tensor_arena[kTensorArenaSize];

    int main(int argc, char** argv) {
      if (argc != 2) return 1;
      ModelOpResolver resolver;
      if (RegisterModelOps(resolver) != kTfLiteOk) return 2;
      if (reinterpret_cast<uintptr_t>(g_model_data) % 16 != 0) return 3;
      FILE* out = std::fopen(argv[1], "wb");
      std::fwrite(g_model_data, 1, g_model_data_len, out);
      std::fclose(out);
      std::printf("%u %zu %zu %d %d %.9g %d\\n", resolver.GetRegistrationLength(), sizeof(tensor_arena), kTensorArenaMeasuredSize,
                  kModelInput0Dims[1], kModelInputCount, kModelOutput0Scale, kModelOutput0ZeroPoint);
      return 0;
    }
    """
)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler on this machine")
def test_c_sources_compile_and_carry_the_exact_model(digits_mcu, tmp_path):
    folder = digits_mcu.output_dir
    assert sorted(digits_mcu.artifact.details["c_sources"]) == ["model_data.cc", "model_data.h", "model_ops.h"]
    stub = tmp_path / "include" / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    stub.write_text(RESOLVER_STUB % "\n  ".join(f"EDGEZOO_OP({m})" for m in RESOLVER_METHODS))
    (tmp_path / "main.cc").write_text(FIRMWARE_MAIN)
    binary = tmp_path / "firmware"
    compiled = subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(folder), "-I", str(tmp_path / "include"),
         str(tmp_path / "main.cc"), str(folder / "model_data.cc"), "-o", str(binary)],
        capture_output=True, text=True,
    )
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run([str(binary), str(tmp_path / "dumped.tflite")], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    registered, arena, measured, height, inputs, scale, zero_point = ran.stdout.split()
    model = read_flatbuffer(digits_mcu.artifact.path.read_bytes())
    assert int(registered) == len(model.op_names) == 5  # exactly the model's ops, each once
    assert (tmp_path / "dumped.tflite").read_bytes() == digits_mcu.artifact.path.read_bytes()
    assert int(arena) == digits_mcu.artifact.details["arena_bytes"] and int(measured) == digits_mcu.artifact.details["arena_bytes_measured"]
    assert (int(height), int(inputs)) == (8, 1)
    assert float(scale) == pytest.approx(model.outputs[0].scale) and int(zero_point) == model.outputs[0].zero_point
    assert "10% safety margin" in (folder / "model_data.h").read_text()


# --- refusals: ops, flash, RAM ----------------------------------------------------------------


def test_a_model_with_an_op_tflm_lacks_is_refused_before_conversion(tmp_path):
    from edgezoo import _tf

    keras = _tf.tf_keras()
    assert "GELU" not in tflm_ops.supported_ops()
    inputs = keras.Input((16,), name="features")
    hidden = keras.layers.Dense(8, activation="gelu", name="dense_gelu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(hidden))
    with _tf.quiet_native_output():
        model.save(tmp_path / "gelu_model", save_format="tf")
    out = tmp_path / "out"
    with pytest.raises(TargetConstraintError) as caught:
        edgezoo.convert(str(tmp_path / "gelu_model"), target="microcontroller", out_dir=out)
    message = str(caught.value)
    assert "GELU" in message and "dense_gelu" in message and "(tflm)" in message
    assert caught.value.exit_code == 3
    assert not (out / "gelu_model" / "microcontroller").exists()
    assert not list(out.rglob("*.tflite"))  # refused before the int8 conversion wrote anything


@pytest.mark.parametrize(
    "budget, figures",
    [
        ("max_arena_bytes = 2_048", ["-byte tensor arena", "RAM budget of 2,048 bytes"]),
        ("max_model_bytes = 10_000", ["47,", "flash budget of 10,000 bytes"]),  # 47,4xx bytes, metadata included
    ],
    ids=["ram", "flash"],
)
def test_a_budget_too_small_is_refused_with_the_figures(cli, tmp_path, budget, figures):
    board = tmp_path / "tiny_board.toml"
    board.write_text(f'extends = "microcontroller"\n{budget}\n')
    done = cli("convert", "digits-cnn", "--target", str(board), "--out", str(tmp_path / "out"))
    assert done.returncode == 3, done.stderr
    for figure in figures:
        assert figure in done.stderr
    if "max_model_bytes" in budget:  # the size it states, and the excess, agree with each other
        size = int(re.search(r"the tflite model is ([\d,]+) bytes", done.stderr).group(1).replace(",", ""))
        assert 20_000 < size < 100_000 and f"(by {size - 10_000:,})" in done.stderr
    assert "tiny_board" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "digits-cnn" / "tiny_board").exists()


# --- a Keras application with a dynamic batch -------------------------------------------------


def test_keras_application_with_a_dynamic_batch_is_fixed_to_one_and_runs_on_tflm(mobilenet, tmp_path):
    images = mobilenet / "images.npz"
    original = edgezoo.load(str(mobilenet / "saved_model"))
    assert original.inputs[0].shape == (None, *MOBILENET_INPUT)
    reference = run_reference(original, {"image": np.load(images)["image"]})["probabilities"]
    assert np.std(reference, axis=0).max() > 1e-3  # the outputs vary with the input

    # Random weights quantise far worse than trained ones (LiteRT scores the same int8 file alike), so
    # this board profile asks for less parity than the built-in one; budgets, ops and batch are its own.
    board = tmp_path / "random_weights_board.toml"
    board.write_text('extends = "microcontroller"\n[tolerances.int8]\nmax_error_over_range = 0.6\nmax_relative_l2_error = 0.75\nmin_cosine = 0.8\nmin_snr_db = 3.0\nmin_top1_agreement = 0.4\n')
    result = edgezoo.convert(original, target=str(board), out_dir=tmp_path / "out", calibration=images).targets[0]
    assert result.passed, result.parity.summary()
    assert result.parity.outputs[0].metrics["cosine"] < 0.98  # the built-in tolerance would have refused it: parity is measured
    model = read_flatbuffer(result.artifact.path.read_bytes())
    assert model.inputs[0].shape_signature == (1, *MOBILENET_INPUT) and model.inputs[0].dtype == "int8"
    assert "SHAPE" not in model.op_names  # the dynamic batch's shape arithmetic is gone
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= set(model.op_names)
    assert result.parity.runtime == "tflm" and result.parity.num_samples == 20
    report = json.loads((result.output_dir / "report.json").read_text())
    assert report["footprint"]["parameter_count"] == 221_114 and report["footprint"]["macs"] > 500_000
    assert "AddDepthwiseConv2D" in (result.output_dir / "model_ops.h").read_text()


def test_a_tflm_crash_becomes_a_reported_failure(mobilenet, tmp_path):
    """The untrained MobileNet's int8 model makes TFLM abort its process; edgezoo reports it and goes on."""
    from edgezoo.calibration import load_calibration
    from edgezoo.formats import converter_for

    model = edgezoo.load(str(mobilenet / "untrained"))
    data = load_calibration(mobilenet / "images.npz", model)
    request = ConversionRequest(quantization=Quantization.INT8, calibration=data, integer_io=True)
    artifact = converter_for("tflite").convert(model, request, tmp_path)

    with pytest.raises(RuntimeFailure) as caught:
        tflm.run(artifact, data.heldout)
    assert "TFLM crashed (SIGABRT)" in str(caught.value)

    reference = run_reference(model, data.heldout)
    tolerance = resolve_profile("microcontroller").tolerance_for(Quantization.INT8)
    parity = check_parity(artifact, "tflm", data.heldout, reference, classifier=True, tolerance=tolerance)
    assert not parity.passed and "SIGABRT" in parity.error  # a reported failure, and this process still runs
