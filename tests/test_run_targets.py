"""Every target of a run is tried and reported: a refused or failed target does not stop the others."""

from __future__ import annotations

import json

import jsonschema
import pytest

import edgezoo
from edgezoo.errors import TargetConstraintError
from edgezoo.reports.json_report import RUN_SUMMARY_KIND, schema_for


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiles")
    (folder / "tiny-flash.toml").write_text('extends = "phone"\nquantization = "float32"\nmax_model_bytes = 1000\n')
    (folder / "too-strict.toml").write_text('extends = "phone"\nquantization = "float16"\n[tolerances.float16]\nmin_snr_db = 200.0\n')
    return folder


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, profiles):
    """phone (passes), a flash budget nothing fits (refused, exit 3), a tolerance nothing meets (parity, exit 1), onnx (passes)."""
    from tests.conftest import run_edgezoo

    out = tmp_path_factory.mktemp("mixed")
    done = run_edgezoo("convert", "digits-cnn", "--target", "phone", "--target", profiles / "tiny-flash.toml",
                       "--target", profiles / "too-strict.toml", "--target", "onnx", "--out", out, "--json")
    return done, out


def test_a_refused_target_does_not_stop_the_others(mixed_run):
    done, out = mixed_run
    assert done.returncode == 3, done.stderr  # the most severe of 0, 3, 1, 0
    data = json.loads(done.stdout)
    status = {t["target"]: (t["status"], t["exit_code"]) for t in data["targets"]}
    assert status == {"phone": ("passed", 0), "tiny-flash": ("refused", 3), "too-strict": ("parity failed", 1), "onnx": ("passed", 0)}
    assert data["exit_code"] == 3
    refused = next(t for t in data["targets"] if t["target"] == "tiny-flash")
    assert "flash budget of 1,000 bytes" in refused["error"] and refused["output_dir"] is None
    assert (out / "digits-cnn" / "phone" / "model.tflite").exists() and (out / "digits-cnn" / "onnx" / "model.onnx").exists()
    assert not (out / "digits-cnn" / "tiny-flash").exists()  # nothing half-made is published
    assert not [p for p in (out / "digits-cnn").iterdir() if p.name.startswith(".")]  # no staging left behind
    assert "tiny-flash: refused (exit 3)" in done.stderr


def test_the_run_summary_lists_failed_targets_with_their_reason(mixed_run):
    _, out = mixed_run
    summary = json.loads((out / "digits-cnn" / "report.json").read_text())
    jsonschema.validate(summary, schema_for(RUN_SUMMARY_KIND))
    rows = {row["target"]: row for row in summary["targets"]}
    assert list(rows) == ["phone", "tiny-flash", "too-strict", "onnx"] and summary["exit_code"] == 3 and not summary["passed"]
    assert rows["tiny-flash"]["failed"] and rows["tiny-flash"]["status"] == "refused" and rows["tiny-flash"]["quantization"] == "float32"
    assert rows["too-strict"]["status"] == "parity failed" and not rows["too-strict"]["passed"]
    html = (out / "digits-cnn" / "report.html").read_text()
    assert "REFUSED (exit 3)" in html and "flash budget" in html


def test_a_run_of_one_target_raises_its_error(tmp_path, digits, profiles):
    with pytest.raises(TargetConstraintError, match="flash budget"):
        edgezoo.convert(digits, target=str(profiles / "tiny-flash.toml"), out_dir=tmp_path)
    summary = json.loads((tmp_path / "digits-cnn" / "report.json").read_text())
    assert summary["targets"][0]["status"] == "refused"  # the summary is written before the error is raised


def test_the_api_returns_every_target_of_a_run(tmp_path, digits, profiles):
    result = edgezoo.convert(digits, target=("phone", str(profiles / "tiny-flash.toml")), out_dir=tmp_path)
    phone, tiny = result.targets
    assert phone.passed and phone.exit_code == 0
    assert tiny.failure is not None and isinstance(tiny.failure.error, TargetConstraintError) and tiny.exit_code == 3
    assert result.exit_code == 3 and not result.passed
