"""Conversion-only jobs (bench/convert_only.py, the runner as the benchmark measures it against the official
tools): the real runner's worker processes convert, nothing is checked, and nothing says it was."""

from __future__ import annotations

import json

from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from bench import convert_only


def test_conversion_only_jobs_convert_in_workers_and_claim_no_check(tmp_path):
    # One quantised target with a fixed batch (traced, not re-saved) and one refusal: each is its own worker's job.
    profile = tmp_path / "tiny-flash.toml"
    profile.write_text('extends = "phone"\nquantization = "float32"\nmax_model_bytes = 1000\n')
    outcomes = convert_only.run("digits-cnn", None, ("microcontroller", str(profile)), tmp_path / "out", jobs=2)
    micro, tiny = (outcome.result for outcome in outcomes)
    assert {outcome.worker for outcome in outcomes} != {None} and len({outcome.worker for outcome in outcomes}) == 2
    assert micro.failure is None and micro.checked is False and micro.files == ("model.tflite",)
    folder = tmp_path / "out" / "digits-cnn" / "microcontroller"
    assert sorted(p.name for p in folder.iterdir()) == ["model.tflite"]  # no report, no verdict, no device bundle
    summary = read_flatbuffer((folder / "model.tflite").read_bytes(), "serving_default")
    assert {node.op for node in summary.ops} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert all(dtype == "int8" for node in summary.ops if node.op == "CONV_2D" for dtype in node.input_dtypes[:1])
    # The size budget is the converter's finishing check, which conversion-only jobs do not run: it converts, and says
    # nothing about the budget either way.
    assert tiny.failure is None and tiny.checked is False
    assert not any(p.name == "report.json" for p in (tmp_path / "out").rglob("*"))
    json.dumps([outcome.seconds for outcome in outcomes])
