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

from edgezoo.targets.profile import LIMITS

from edgezoo.validate import metrics
from edgezoo.validate.device_check import GoldenSet, device_script
from tests.conftest import REPO, side_environment
from tests.tamper import tamper_onnx_weights, tamper_tfjs_weights, tamper_tflite_weights

DEVICE_VENV = REPO / ".venv-device"
DEVICE_REQUIREMENTS = REPO / "requirements" / "device.txt"
ALLOWED_IN_DEVICE_VENV = {"numpy", "tflite-runtime", "tflite_runtime", "pip", "setuptools", "wheel"}

@pytest.fixture(scope="session")
def device_python():
    """The device's Python; made once (by `make install`, or here on first use) and kept in .venv-device/."""
    return side_environment(DEVICE_VENV, DEVICE_REQUIREMENTS)


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
def converted(every_runtime):
    """digits-cnn for a target of every runtime, in one run (tests/conftest.py), by target name."""
    return {t.target: t for t in every_runtime.targets}


def test_device_environment_holds_only_numpy_and_the_tflite_runtime(device_python):
    listed = subprocess.run([str(device_python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert names <= ALLOWED_IN_DEVICE_VENV and {"numpy", "tflite-runtime"} <= names, names
    probe = "import importlib.util as u; print([m for m in ('tensorflow', 'edgezoo', 'ai_edge_litert') if u.find_spec(m)])"
    found = subprocess.run([str(device_python), "-c", probe], capture_output=True, text=True, cwd="/", env=_device_env("/"))
    assert found.stdout.strip() == "[]"


def test_bundle_holds_golden_data_and_the_targets_tolerances(converted, digits_data):
    result = converted["phone-f32"]
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


@pytest.mark.parametrize("kind", ["phone-f32", "phone-int8", "microcontroller"])
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
    device = _copy_to_device(converted["phone-f32"].output_dir, tmp_path / "device")
    tamper_tflite_weights(device / "model.tflite")
    done = _on_device(device_python, device)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout and "snr_db" in done.stdout.split("FAIL:")[1]  # a scale-free limit caught it


def test_check_parity_says_when_it_cannot_start(converted, device_python, tmp_path):
    device = _copy_to_device(converted["phone-f32"].output_dir, tmp_path / "device")
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
    kind_metrics = {name: fn for kind in script.KIND_METRICS.values() for name, fn in kind.items()}
    assert set(script.METRICS) | set(kind_metrics) >= {limit[0] for limit in LIMITS.values()}  # every limit is measurable there
    for name, fn in {**script.METRICS, **kind_metrics}.items():
        assert fn(ref, out) == pytest.approx(metrics.METRICS[name][0](ref, out), rel=1e-9), name
    limits = {"max_abs_error": 0.01, "min_cosine": 0.9, "max_error_over_range": 1.0}
    values = {name: fn(ref, out) for name, fn in script.METRICS.items()}
    mapping = {limit: list(LIMITS[limit][:2]) for limit in limits}
    assert script.violations(limits, values, mapping) == [f"max_abs_error {values['max_abs_error']:.6g} > 0.01"]
    assert script.violations({"max_relative_l2_error": 1e-6}, values, {"max_relative_l2_error": ["relative_l2_error", "max"]})
    assert script.violations({"min_cosine": 0.9}, {"cosine": float("nan")})  # NaN never passes


def test_golden_set_is_cut_to_a_size_a_device_can_hold(digits_data):
    from edgezoo.targets import Tolerance

    inputs = digits_data.heldout
    golden = GoldenSet("m", "t", Tolerance(), True, inputs, {"p": np.zeros((360, 10), np.float32)})
    per_sample = inputs["image"][:1].nbytes + 40
    assert len(golden.limited(max_bytes=per_sample * 7).inputs["image"]) == 7
    assert len(golden.limited(max_bytes=1).expected["p"]) == 1
    assert len(golden.limited().inputs["image"]) == 360


def test_check_parity_runs_onnx_models_on_onnxruntime(converted, tmp_path):
    """The same script for ONNX, here with the main environment's onnxruntime as the device's runtime."""
    target = converted["onnx"].output_dir
    device = tmp_path / "device"
    shutil.copytree(target / "device_check", device / "device_check")
    shutil.copyfile(target / "model.onnx", device / "model.onnx")
    run = lambda: subprocess.run([sys.executable, "device_check/check_parity.py"], cwd=device, capture_output=True, text=True, timeout=120)  # noqa: E731
    good = run()
    assert good.returncode == 0 and "PASSED: 360 golden inputs on onnxruntime" in good.stdout, good.stdout + good.stderr
    tamper_onnx_weights(device / "model.onnx")
    bad = run()
    assert bad.returncode == 1 and "FAILED" in bad.stdout, bad.stdout + bad.stderr


# A child process: Playwright's sync API cannot start twice in one process, and the browser runner keeps its own.
BROWSER_SCRIPT = """
import json, sys
from playwright.sync_api import sync_playwright
from edgezoo.formats.tfjs.run_browser import CHROMIUM, CHROMIUM_FLAGS, LoopbackServer

server = LoopbackServer()
server.mount("/", __import__("pathlib").Path(sys.argv[1]))
with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    page = browser.new_page()
    page.goto(server.origin + "/device_check/check_parity.html?backend=" + sys.argv[2])
    page.wait_for_function("document.body.dataset.verdict !== 'running'", timeout=120_000)
    print(json.dumps(page.evaluate("[document.body.dataset.verdict, document.getElementById('details').textContent]")))
    browser.close()
server.close()
"""


def _browser_verdict(folder, backend="cpu"):
    """Open the bundle's check_parity.html as a user does: the target folder served over loopback HTTP."""
    done = subprocess.run([sys.executable, "-c", BROWSER_SCRIPT, str(folder), backend], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_parity_html_in_headless_chromium(converted, tmp_path):
    target = converted["browser-f32"].output_dir
    files = {p.name for p in (target / "device_check").iterdir()}
    assert {"check_parity.html", "tf.min.js", "harness.mjs", "golden.json", "tolerances.json"} <= files  # nothing fetched from outside
    device = tmp_path / "device"
    shutil.copytree(target, device)
    verdict, details = _browser_verdict(device)
    assert verdict == "passed" and "360 golden inputs on TF.js 4.22.0 (cpu backend)" in details, details
    tamper_tfjs_weights(device / "tfjs_model" / "model.json")
    verdict, details = _browser_verdict(device)
    assert verdict == "failed" and "snr_db" in details and "max_error_over_range" in details, details


CPP_DUMP = """
#include <cstdio>
#include "golden_data.h"
#include "model_data.h"
int main() {
  for (int s = 0; s < kGoldenCount; ++s) {
    for (int i = 0; i < kGoldenInput0Size; ++i) std::printf("%d ", g_golden_input0[s][i]);
    std::printf("\\n");
  }
  for (int s = 0; s < kGoldenCount; ++s) {
    for (int i = 0; i < kGoldenOutput0Size; ++i) std::printf("%.9g ", g_golden_expected0[s][i]);
    std::printf("%d\\n", g_golden_best_class0[s]);
  }
  std::printf("%.9g %.9g %d\\n", kGoldenMaxErrorOverRange, kGoldenMinTop1Agreement, (int)g_model_data_len);
  return 0;
}
"""


def test_microcontroller_gets_golden_c_arrays_next_to_model_data(converted, tmp_path):
    """golden_data.cc compiles with model_data.cc, and holds the golden inputs as the int8 model takes them."""
    result = converted["microcontroller"]
    folder = result.output_dir
    assert {"golden_data.h", "golden_data.cc", "model_data.cc"} <= {p.name for p in folder.iterdir()}
    assert "golden_data.cc" in result.report["device_check"]["files"]
    (tmp_path / "dump.cc").write_text(CPP_DUMP)
    program = tmp_path / "dump"
    compiled = subprocess.run(
        ["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{folder}", str(tmp_path / "dump.cc"),
         str(folder / "golden_data.cc"), str(folder / "model_data.cc"), "-o", str(program)],
        capture_output=True, text=True, timeout=120,
    )
    assert compiled.returncode == 0, compiled.stderr
    lines = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.splitlines()
    count = len(lines[:-1]) // 2
    assert count == 16
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(result.artifact.path)).get_input_details()[0]
    scale, zero_point = detail["quantization"]
    with np.load(folder / "device_check" / "golden_inputs.npz") as inputs, np.load(folder / "device_check" / "expected_outputs.npz") as expected:
        quantised = np.clip(np.round(inputs["image"][:count] / scale + zero_point), -128, 127).reshape(count, -1)
        original = expected["probabilities"][:count]
    np.testing.assert_array_equal(np.array([line.split() for line in lines[:count]], dtype=np.int64), quantised)
    rows = np.array([line.split() for line in lines[count:-1]], dtype=np.float64)
    np.testing.assert_array_equal(rows[:, :-1].astype(np.float32), original)
    np.testing.assert_array_equal(rows[:, -1], np.argmax(original, axis=-1))
    max_error_over_range, min_top1, model_length = lines[-1].split()
    tolerance = result.parity.tolerance
    assert np.float32(max_error_over_range) == np.float32(tolerance.max_error_over_range)
    assert np.float32(min_top1) == np.float32(tolerance.min_top1_agreement)
    assert int(model_length) == result.artifact.size_bytes
