"""Placement in the targets' reports and profiles that require the GPU delegate (issue 25, items 1 and 2).

The model with an op the GPU delegate rejects is a tiny tf-keras net built here whose output is a log-softmax: TFLite
makes it LOG_SOFTMAX, which gpu_compatibility.cc has no case for. As the last op it splits nothing in float (one
partition, LOG_SOFTMAX on the CPU), but full-integer int8 adds a DEQUANTIZE after it, which the delegate takes: a second
partition. That is the real case auto trades on under `max_gpu_partitions = 1`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import edgezoo
from edgezoo import diagnostics as diag
from edgezoo.errors import TargetConstraintError
from tests.edge_formats import save_module

PHONE_TOLERANCES = """
[tolerances.float16]
min_snr_db = 30.0

[tolerances.int8]
min_snr_db = 10.0
"""


def log_softmax_model(folder):
    from edgezoo import _tf
    import tf_keras as keras

    tf = _tf.tf()
    keras.utils.set_random_seed(5)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        @tf.function
        def serve(self, features):
            return {"log_probs": tf.nn.log_softmax(self.net(features))}

    return save_module(Net(), folder, tf.TensorSpec([None, 64], tf.float32, name="features"))


@pytest.fixture(scope="module")
def log_softmax(tmp_path_factory):
    folder = tmp_path_factory.mktemp("log-softmax")
    data = folder / "features.npz"
    np.savez(data, features=np.random.default_rng(0).normal(size=(40, 64)).astype(np.float32))
    return log_softmax_model(folder / "log-softmax"), data, folder / "log-softmax"


def _profile(tmp_path, name: str, lines: str, quantization: str = "auto"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nformat = "tflite"\nruntime = "litert"\nquantization = "{quantization}"\n{lines}\n{PHONE_TOLERANCES}')
    return path


def test_a_converted_target_reports_where_its_ops_run(tmp_path):
    result = edgezoo.convert("digits-cnn", targets=("phone",), out_dir=tmp_path)
    (row,) = result.targets
    assert row.exit_code == 0
    report = json.loads((row.output_dir / "report.json").read_text())
    placement = report["placement"]
    assert placement["placed_for"] == "tflite"
    (gpu,) = placement["backends"]
    assert gpu["backend"] == "GPU delegate" and gpu["total"] == len(gpu["ops"])
    assert {op["op"] for op in gpu["ops"]} == set(report["artifact"]["ops"])
    assert gpu["summary"] == f"GPU delegate: {gpu['accepted']} of {gpu['total']} ops, {gpu['partitions']} partition" + ("s" if gpu["partitions"] != 1 else "")
    assert gpu["total"] > 5 and gpu["partitions"] == 1 and gpu["rejected"] == []
    html = (row.output_dir / "report.html").read_text()
    assert "Where each op runs" in html and gpu["summary"] in html


def test_a_failing_placement_is_unavailable_and_the_verdict_stands(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr("edgezoo.formats.placement.place", boom)
    (row,) = edgezoo.convert("digits-cnn", targets=("phone",), out_dir=tmp_path).targets
    assert row.exit_code == 0 and row.artifact.path.exists()
    report = json.loads((row.output_dir / "report.json").read_text())
    assert report["placement"] == {"status": "unavailable", "error": "RuntimeError: injected failure"}
    assert {r["name"]: r["error"] for r in report["diagnostics"]["unavailable"]}[diag.PLACEMENT] == "RuntimeError: injected failure"
    assert "Op placement unavailable" in (row.output_dir / "report.html").read_text()


def test_require_gpu_delegate_refuses_before_conversion_naming_the_op(log_softmax, tmp_path, monkeypatch):
    model, data, folder = log_softmax
    profile = _profile(tmp_path, "gpu-only", "require_gpu_delegate = true", quantization="float16")
    converted = []
    from edgezoo.formats.tflite import convert as tflite_convert

    real = tflite_convert.convert
    monkeypatch.setattr(tflite_convert, "convert", lambda *a, **k: converted.append(1) or real(*a, **k))
    start = time.perf_counter()
    with pytest.raises(TargetConstraintError) as refused:  # a run of one target raises its failure
        edgezoo.convert(model, targets=(str(profile),), out_dir=tmp_path / "out", calibration=str(data))
    seconds = time.perf_counter() - start
    assert refused.value.exit_code == 3 and not (tmp_path / "out" / "log-softmax" / "gpu-only").exists()
    message = str(refused.value)
    assert "LOG_SOFTMAX" in message and "Not supported op LOG_SOFTMAX" in message and "before conversion" in message
    assert converted == []  # refused before the converter ran
    assert seconds < 20, seconds
    # The CLI: exit 3, the op named.
    done = subprocess.run([sys.executable, "-m", "edgezoo", "convert", str(folder), "--target", str(profile), "--out",
                           str(tmp_path / "cli"), "--calibration", str(data)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "LOG_SOFTMAX" in done.stdout + done.stderr


def test_auto_keeps_a_candidate_the_gpu_delegate_keeps_in_one_partition(log_softmax, tmp_path):
    model, data, _ = log_softmax
    profile = _profile(tmp_path, "gpu-one-partition", "max_gpu_partitions = 1")
    (row,) = edgezoo.convert(model, targets=(str(profile),), out_dir=tmp_path / "out", calibration=str(data)).targets
    assert row.exit_code == 0, row.failure and row.failure.message
    report = json.loads((row.output_dir / "report.json").read_text())
    auto = report["auto_quantization"]
    rows = {c["candidate"]: c for c in auto["candidates"]}
    int8 = rows["int8"]
    assert int8["verdict"] == "refused (exit 3)" and int8["gpu_placement"].endswith("2 partitions"), int8
    assert "LOG_SOFTMAX" in int8["note"]
    kept = rows[auto["chosen"]]
    assert auto["chosen"] != "int8" and int8["size_bytes"] < kept["size_bytes"]  # the smaller candidate splits, the kept one not
    (gpu,) = report["placement"]["backends"]
    assert gpu["partitions"] == 1 and [op["op"] for op in gpu["rejected"]] == ["LOG_SOFTMAX"]
    assert auto["placement_trade"] == (f"int8 ({int8['size_bytes']:,} B): {int8['gpu_placement']}; kept {auto['chosen']} "
                                       f"({kept['size_bytes']:,} B): {gpu['summary']}")


def test_profile_keys_are_checked(tmp_path):
    from edgezoo.errors import TargetProfileError
    from edgezoo.targets import resolve_profile

    onnx = tmp_path / "onnx-gpu.toml"
    onnx.write_text('extends = "onnx"\nrequire_gpu_delegate = true\n')
    with pytest.raises(TargetProfileError, match="need the tflite format"):
        resolve_profile(str(onnx))
    zero = tmp_path / "zero.toml"
    zero.write_text('extends = "phone"\nmax_gpu_partitions = 0\n')
    with pytest.raises(TargetProfileError, match="max_gpu_partitions must be at least 1"):
        resolve_profile(str(zero))
    ok = tmp_path / "ok.toml"
    ok.write_text('extends = "phone"\nrequire_gpu_delegate = true\nmax_gpu_partitions = 2\n')
    profile = resolve_profile(str(ok))
    assert profile.require_gpu_delegate and profile.max_gpu_partitions == 2 and profile.to_json()["max_gpu_partitions"] == 2


def test_the_artifact_itself_is_checked_after_conversion(log_softmax, tmp_path):
    """Float lowering passes (LOG_SOFTMAX last: one partition); the int8 artifact's DEQUANTIZE after it makes two."""
    model, data, _ = log_softmax
    profile = _profile(tmp_path, "gpu-one-partition", "max_gpu_partitions = 1")
    with pytest.raises(TargetConstraintError) as refused:
        edgezoo.convert(model, targets=(str(profile),), out_dir=tmp_path / "out", calibration=str(data), quantize="int8")
    message = str(refused.value)
    assert refused.value.exit_code == 3
    assert "model.tflite (int8)" in message and "2 partitions, over max_gpu_partitions = 1" in message and "LOG_SOFTMAX" in message
