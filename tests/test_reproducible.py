"""Reproducible artifacts: the same source, options and tool versions give byte-identical files for every format and
quantisation. The CLI converts digits-cnn twice, in two fresh processes with different output folders, and every
file of every target folder is compared by sha256; the only files that may differ are those each report lists
under reproducibility.varies (report.json and report.html, by their time stamp; an ONNX artifact's per-op latency overlay, by its timings)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

# Target profile file -> its contents: every TFLite quantisation, the microcontroller's C sources, ONNX, TF.js shards.
PROFILES = {
    "tflite-float32": 'extends = "phone"\nquantization = "float32"\n',
    "tflite-float16": 'extends = "phone"\nquantization = "float16"\n',
    "tflite-dynamic-int8": 'extends = "phone"\nquantization = "dynamic-int8"\n',
    "tflite-int8": 'extends = "phone-int8"\n',
    "tflite-int16x8": 'extends = "phone"\nquantization = "int16x8"\n',
    "microcontroller-int8": 'extends = "microcontroller"\n',
    "onnx-float32": 'extends = "onnx"\n',
    "tfjs-float16-shards": 'extends = "browser"\nruntime = "tfjs-node"\n[format_options]\nshard_size_bytes = 32768\n',
}


def _without_timings(value):
    """A report section with its 'seconds' fields (timings of the run's steps, which vary by nature) taken out."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _files(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """digits-cnn converted for every profile above by two `edgezoo convert` processes running side by side."""
    root = tmp_path_factory.mktemp("reproducible")
    targets = []
    for name, text in PROFILES.items():
        (root / f"{name}.toml").write_text(text)
        targets += ["--target", str(root / f"{name}.toml")]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    runs = [subprocess.Popen([sys.executable, "-m", "edgezoo", "convert", "digits-cnn", *targets, "--out", str(root / run), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for run in ("first", "second")]
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
    return [root / run / "digits-cnn" for run in ("first", "second")]


@pytest.mark.parametrize("target", list(PROFILES))
def test_two_runs_give_byte_identical_artifacts(two_runs, target):
    first, second = (run / target for run in two_runs)
    report = json.loads((first / "report.json").read_text())
    section = report["reproducibility"]
    files_first, files_second = _files(first), _files(second)
    assert set(files_first) == set(files_second)
    differing = {name for name in files_first if files_first[name] != files_second[name]}
    assert differing <= set(section["varies"]), differing  # at most report.json and report.html (their time stamp)
    # Every file of the artifact, as the report lists it, is there, with the bytes the report says.
    assert section["files"] and all(files_first[name] == digest for name, digest in section["files"].items())
    assert report["artifact"]["path"] in section["files"]
    if report["artifact"].get("labels_file"):
        assert any(name.endswith("labels.txt") for name in section["files"])
    other = json.loads((second / "report.json").read_text())["reproducibility"]
    assert other["fingerprint"] == section["fingerprint"] and other["files"] == section["files"]


def test_reports_differ_only_where_they_say(two_runs):
    """The reports of the two runs differ at most in created_at (the second the run ended), and a change of what the
    artifact is made of changes the fingerprint and the files: the comparison above can tell."""
    first, second = (json.loads((run / "tflite-int8" / "report.json").read_text()) for run in two_runs)
    assert "seconds" in first["quantization_trace"]  # timings are there, and are all that may differ besides created_at
    assert {key for key in first if _without_timings(first[key]) != _without_timings(second[key])} <= {"created_at"}
    inputs = first["reproducibility"]["inputs"]
    assert inputs["source"] == "bundled:digits-cnn" and inputs["seed"] == 0 and inputs["quantization"] == "int8"
    assert len(inputs["calibration_sha256"]) == 64 and inputs["tools"]["tensorflow"] and inputs["source_sha256"] == first["model"]["sha256"]
    other = json.loads((two_runs[0] / "tflite-int16x8" / "report.json").read_text())["reproducibility"]
    assert other["fingerprint"] != first["reproducibility"]["fingerprint"]
    assert other["files"]["model.tflite"] != first["reproducibility"]["files"]["model.tflite"]
