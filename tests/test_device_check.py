"""device_check/: the golden data, the tolerances and check_parity.py, run the way a device runs them --
in a separate virtual environment holding only numpy<2 and tflite-runtime 2.14 (as on a Raspberry Pi),
on a copy of the model and the bundle outside the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import edgezoo
from edgezoo.validate import metrics
from edgezoo.validate.device_check import GoldenSet, device_script
from tests.conftest import REPO
from tests.tamper import tamper_tflite_weights

DEVICE_VENV = REPO / ".venv-device"
DEVICE_REQUIREMENTS = REPO / "requirements" / "device.txt"
ALLOWED_IN_DEVICE_VENV = {"numpy", "tflite-runtime", "tflite_runtime", "pip", "setuptools", "wheel"}

INTEGER_IO_PROFILE = """
name = "npu-int8"
description = "Full-integer int8 with int8 inputs and outputs, as NPUs and DSPs want."
format = "tflite"
runtime = "litert"
quantization = "int8"
integer_io = true

[tolerances.int8]
max_abs_error = 0.25
min_cosine = 0.98
min_top1_agreement = 0.95
"""


@pytest.fixture(scope="session")
def device_python():
    """The device's Python; made once (by `make install`, or here on first use) and kept in .venv-device/."""
    python = DEVICE_VENV / "bin" / "python"
    stamp = DEVICE_VENV / ".ready"
    wanted = DEVICE_REQUIREMENTS.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(DEVICE_VENV, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(DEVICE_VENV)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(DEVICE_REQUIREMENTS)],
            check=True, timeout=900,
        )
        stamp.write_text(wanted)
    return python


def _device_env(folder):
    """Nothing of this repository or its virtual environment reachable."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(folder)}


def _on_device(python, folder, *args):
    """Run the bundle's script from the model's folder, as on the device."""
    command = [str(python), "device_check/check_parity.py", *args]
    return subprocess.run(command, cwd=folder, env=_device_env(folder), capture_output=True, text=True, timeout=120)


def _copy_to_device(target_dir, device_dir):
    """What a user copies to the device: the model and the device_check folder, nothing else."""
    device_dir.mkdir()
    shutil.copytree(target_dir / "device_check", device_dir / "device_check")
    shutil.copyfile(target_dir / "model.tflite", device_dir / "model.tflite")
    return device_dir


@pytest.fixture(scope="module")
def converted(tmp_path_factory, digits):
    """digits-cnn as float32 (weights to tamper with) and as full-integer int8 with int8 inputs and outputs."""
    root = tmp_path_factory.mktemp("device")
    profile = root / "npu-int8.toml"
    profile.write_text(INTEGER_IO_PROFILE)
    float32 = edgezoo.convert(digits, target="phone", quantize="float32", out_dir=root / "f32").targets[0]
    int8 = edgezoo.convert(digits, target=str(profile), out_dir=root / "int8").targets[0]
    assert float32.passed and int8.passed
    return {"float32": float32, "int8": int8}


def test_device_environment_holds_only_numpy_and_the_tflite_runtime(device_python):
    listed = subprocess.run([str(device_python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert names <= ALLOWED_IN_DEVICE_VENV and {"numpy", "tflite-runtime"} <= names, names
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'edgezoo', 'ai_edge_litert') if u.find_spec(m)])"
    found = subprocess.run([str(device_python), "-c", probe], capture_output=True, text=True, cwd="/", env=_device_env("/"))
    assert found.stdout.strip() == "[]"


def test_bundle_holds_golden_data_and_the_targets_tolerances(converted, digits_data):
    result = converted["float32"]
    bundle = result.output_dir / "device_check"
    manifest = json.loads((bundle / "tolerances.json").read_text())
    assert manifest["model"] == "../model.tflite" and manifest["format"] == "tflite" and manifest["classifier"] is True
    tolerance = {k: v for k, v in result.parity.to_json()["tolerance"].items()}
    assert manifest["tolerance"] == tolerance and manifest["not_checked"] == []
    with np.load(bundle / "golden_inputs.npz") as inputs, np.load(bundle / "expected_outputs.npz") as expected:
        assert inputs.files == ["image"] and expected.files == ["probabilities"]
        np.testing.assert_array_equal(inputs["image"], digits_data.heldout["image"])
        assert expected["probabilities"].shape == (360, 10) and np.std(expected["probabilities"], axis=0).max() > 0.1
    assert result.report["device_check"]["num_samples"] == 360
    assert "device_check/check_parity.py" in result.report["device_check"]["files"]


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_check_parity_passes_on_the_device(converted, device_python, tmp_path, kind):
    device = _copy_to_device(converted[kind].output_dir, tmp_path / "device")
    done = _on_device(device_python, device)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED: 360 golden inputs on tflite_runtime 2.14.0" in done.stdout
    as_json = json.loads(_on_device(device_python, device, "--json").stdout)
    ours = converted[kind].parity.outputs[0].metrics
    theirs = as_json["outputs"][0]
    assert theirs["top1_agreement"] == ours["top1_agreement"]
    assert theirs["max_abs_error"] == pytest.approx(ours["max_abs_error"], rel=1e-3, abs=1e-6)


def test_check_parity_fails_on_the_device_for_a_tampered_model(converted, device_python, tmp_path):
    device = _copy_to_device(converted["float32"].output_dir, tmp_path / "device")
    tamper_tflite_weights(device / "model.tflite")
    done = _on_device(device_python, device)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "max_abs_error" in done.stdout


def test_check_parity_says_when_it_cannot_start(converted, device_python, tmp_path):
    device = _copy_to_device(converted["float32"].output_dir, tmp_path / "device")
    manifest_path = device / "device_check" / "tolerances.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(dict(manifest, format="onnx", model="../model.onnx")))
    shutil.copyfile(device / "model.tflite", device / "model.onnx")
    done = _on_device(device_python, device)
    assert done.returncode == 2 and "onnxruntime" in done.stderr  # the runtime is missing: not a parity verdict
    (device / "device_check" / "expected_outputs.npz").unlink()
    manifest_path.write_text(json.dumps(manifest))
    done = _on_device(device_python, device)
    assert done.returncode == 2 and "expected_outputs.npz is missing" in done.stderr


def test_device_metrics_agree_with_edgezoos_own():
    script = device_script()
    rng = np.random.default_rng(3)
    ref = rng.random((40, 10)).astype(np.float32)
    out = ref + rng.normal(0, 0.05, ref.shape).astype(np.float32)
    out[0] = ref[0]  # an identical sample counts as cosine 1 in both
    for name, fn in {**script.METRICS, **script.CLASSIFIER_METRICS}.items():
        assert fn(ref, out) == pytest.approx(metrics.METRICS[name][0](ref, out), rel=1e-9), name
    limits = {"max_abs_error": 0.01, "min_cosine": 0.9}
    values = {name: fn(ref, out) for name, fn in script.METRICS.items()}
    assert script.violations(limits, values) == [f"max_abs_error {values['max_abs_error']:.6g} > 0.01"]
    assert script.violations({"min_cosine": 0.9}, {"cosine": float("nan")})  # NaN never passes


def test_golden_set_is_cut_to_a_size_a_device_can_hold(digits_data):
    from edgezoo.targets import Tolerance

    inputs = digits_data.heldout
    golden = GoldenSet("m", "t", Tolerance(), True, inputs, {"p": np.zeros((360, 10), np.float32)})
    per_sample = inputs["image"][:1].nbytes + 40
    assert len(golden.limited(max_bytes=per_sample * 7).inputs["image"]) == 7
    assert len(golden.limited(max_bytes=1).expected["p"]) == 1
    assert len(golden.limited().inputs["image"]) == 360
