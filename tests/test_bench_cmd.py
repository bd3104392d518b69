"""`edgezoo bench ARTIFACT`: every case measured in its own process. No timing is asserted (the machine is
shared); the figures must be there, positive and consistent, for every host runtime and the original."""

from __future__ import annotations

import json
import shutil

import pytest

from edgezoo.errors import UsageError
from edgezoo.validate.latency import BenchOptions, bench


def _target(every_runtime, name):
    return next(t for t in every_runtime.targets if t.target == name)


def _check_figures(case, runs):
    assert case["runs"] == runs
    assert 0 < case["min_ms"] <= case["median_ms"] <= case["p90_ms"]
    assert case["peak_rss_bytes"] >= case["runtime_rss_bytes"] > 10 << 20  # a Python or Node process holds more than 10 MiB
    assert case["model_rss_bytes"] >= 0


def test_bench_command_on_litert_single_and_multi_threaded(every_runtime, cli):
    artifact = _target(every_runtime, "phone-f32").artifact.path
    done = cli("bench", artifact, "--runs", "7", "--warmup", "2", "--threads", "2", "--no-original", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["format"] == "tflite" and result["batch"] == 1 and result["sample_shapes"] == {"image": [1, 8, 8, 1]}
    assert [(c["runtime"], c["threads"]) for c in result["cases"]] == [("litert", 1), ("litert", 2)]
    for case in result["cases"]:
        _check_figures(case, 7)
        assert case["speedup_over_original"] is None


def test_bench_compares_with_the_original_in_tensorflow(every_runtime):
    artifact = _target(every_runtime, "phone-int8").artifact.path
    result = bench(artifact, BenchOptions(runs=5, warmup=1, threads=1)).to_json()
    assert result["source"] == "bundled:digits-cnn"  # read from report.json beside the artifact
    assert [c["runtime"] for c in result["cases"]] == ["litert", "tensorflow"]
    for case in result["cases"]:
        _check_figures(case, 5)
    litert, original = result["cases"]
    assert litert["speedup_over_original"] == pytest.approx(original["median_ms"] / litert["median_ms"])
    assert original["runtime_rss_bytes"] > litert["runtime_rss_bytes"]  # TensorFlow itself weighs more than LiteRT


@pytest.mark.parametrize("target, runtime", [("onnx", "onnxruntime"), ("browser-f32", "tfjs-node")])
def test_bench_on_onnx_runtime_and_tfjs_in_node(every_runtime, target, runtime):
    artifact = _target(every_runtime, target).artifact.path
    result = bench(artifact, BenchOptions(runs=4, warmup=1, threads=2, original=False)).to_json()
    assert {c["runtime"] for c in result["cases"]} == {runtime}
    for case in result["cases"]:
        _check_figures(case, 4)


def test_bench_an_artifact_on_its_own(every_runtime, tmp_path):
    """No report or golden data beside it: a random sample of the artifact's input shape, and no original."""
    lone = tmp_path / "lone.tflite"
    shutil.copyfile(_target(every_runtime, "phone-f32").artifact.path, lone)
    result = bench(lone, BenchOptions(runs=3, warmup=0, threads=1)).to_json()
    assert result["source"] is None and result["sample_shapes"] == {"image": [1, 8, 8, 1]}
    assert [c["runtime"] for c in result["cases"]] == ["litert"]
    with pytest.raises(UsageError, match="at least one timed run"):
        BenchOptions(runs=0)


def test_peak_memory_is_the_child_own_not_the_parent(every_runtime):
    """A parent holding 1.5 GB (as one that loaded TensorFlow does) must not show up in the child's peak."""
    import numpy as np

    ballast = np.ones(1536 << 20, dtype=np.uint8)  # touched pages: resident in this process
    artifact = _target(every_runtime, "phone-f32").artifact.path
    result = bench(artifact, BenchOptions(runs=3, warmup=1, threads=1, original=False)).to_json()
    (case,) = result["cases"]
    assert case["peak_rss_bytes"] < 1 << 30, case
    assert ballast.sum() == ballast.size
