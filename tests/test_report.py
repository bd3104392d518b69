"""report.json against its published schema, report.html as a person sees it, the run's parity matrix,
and the metrics the reports add (PSNR, relative L2, top-5 agreement)."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil

import jsonschema
import numpy as np
import pytest

from edgezoo.reports.json_report import RUN_SUMMARY_KIND, TARGET_REPORT_KIND, schema_for
from edgezoo.validate import check_parity, metrics
from edgezoo.reports.target_page import render_target_report
from edgezoo.zoo.reference import run_reference
from tests.conftest import EVERY_RUNTIME
from tests.headless import ink, screenshot
from tests.tamper import tamper_tflite_weights


@pytest.fixture(scope="module")
def run(every_runtime):
    """One run of digits-cnn for a target of every runtime (tests/conftest.py)."""
    return every_runtime


def _target(run, name):
    return next(t for t in run.targets if t.target == name)


def _load(path):
    return json.loads(path.read_text())


# --- metrics -------------------------------------------------------------------------------------


def test_psnr_and_relative_l2_follow_their_definitions():
    ref = np.array([[0.0, 2.0, -4.0, 1.0]])
    out = np.array([[0.0, 1.0, -4.0, 1.0]])
    mse = 1.0 / 4
    assert metrics.psnr_db(ref, out) == pytest.approx(10 * np.log10(4.0**2 / mse))  # peak: the largest |reference|
    assert metrics.relative_l2_error(ref, out) == pytest.approx(1.0 / np.sqrt(4 + 16 + 1))
    assert metrics.psnr_db(ref, ref) == metrics.SNR_CAP_DB and metrics.relative_l2_error(ref, ref) == 0.0
    assert metrics.psnr_db(ref, out * 100) < metrics.psnr_db(ref, out)


def test_top5_agreement_asks_whether_the_original_best_class_stays_in_the_top_five():
    ref = np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], dtype=np.float32)
    shuffled_tail = ref.copy()
    shuffled_tail[0, [1, 9]] = shuffled_tail[0, [9, 1]]  # ranks 2..10 change, the best class stays on top
    demoted = ref.copy()
    demoted[1, 9] = -1.0  # the second sample's best class drops out of the top five
    assert metrics.top5_agreement(ref, ref) == 1.0 and metrics.top5_agreement(ref, shuffled_tail) == 1.0
    assert metrics.top5_agreement(ref, demoted) == pytest.approx(0.5)
    assert metrics.top5_agreement(ref[:, :5], ref[:, :5]) is None  # five classes or fewer: not applicable
    scores = metrics.compare(ref, demoted, classifier=True)
    assert {"psnr_db", "relative_l2_error", "top5_agreement"} <= set(scores)
    assert "top5_agreement" not in metrics.compare(ref, demoted, classifier=False)


# --- report.json ----------------------------------------------------------------------------------


def test_reports_match_their_published_schemas(run):
    target_schema, summary_schema = schema_for(TARGET_REPORT_KIND), schema_for(RUN_SUMMARY_KIND)
    for schema in (target_schema, summary_schema):
        jsonschema.Draft202012Validator.check_schema(schema)
    for target in run.targets:
        report = _load(target.output_dir / "report.json")
        jsonschema.validate(report, target_schema, cls=jsonschema.Draft202012Validator)
        output = report["parity"]["outputs"][0]
        assert output["psnr_db"] > output["snr_db"] > 0 and 0 <= output["relative_l2_error"] < 0.1
        assert output["top5_agreement"] >= 0.9 and sum(output["error_histogram"]["counts"]) == 360 * 10
    summary = _load(run.targets[0].output_dir.parent / "report.json")
    jsonschema.validate(summary, summary_schema, cls=jsonschema.Draft202012Validator)
    # The schema has teeth: a report with a field of the wrong kind is refused.
    broken = _load(run.targets[0].output_dir / "report.json")
    broken["parity"]["outputs"][0]["cosine"] = "high"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, target_schema, cls=jsonschema.Draft202012Validator)


def test_run_summary_is_a_parity_matrix_on_one_golden_set(run):
    model_dir = run.targets[0].output_dir.parent
    summary = _load(model_dir / "report.json")
    assert [row["target"] for row in summary["targets"]] == list(EVERY_RUNTIME)
    assert {row["runtime"] for row in summary["targets"]} == {"litert", "onnxruntime", "tfjs-browser", "tflm"}
    assert summary["same_golden_inputs"] and summary["golden"]["num_samples"] == 360
    for row, target in zip(summary["targets"], run.targets):
        assert (model_dir / row["report"]).exists() and (model_dir / row["html"]).exists()  # per-target reports stay
        assert row["golden_sha256"] == summary["golden"]["sha256"] == target.report["golden"]["sha256"]
        assert row["outputs"][0]["snr_db"] == pytest.approx(target.parity.outputs[0].metrics["snr_db"])
    snr = {row["target"]: row["outputs"][0]["snr_db"] for row in summary["targets"]}
    assert min(snr["phone-f32"], snr["onnx"], snr["browser-f32"]) > 80 > 60 > max(snr["phone-int8"], snr["microcontroller"])
    page = (model_dir / "report.html").read_text()
    assert all(f"href='{name}/report.html'" in page for name in EVERY_RUNTIME)  # the matrix links every target's report


# --- report.html ----------------------------------------------------------------------------------


def _external_references(page: str) -> list[str]:
    found = re.findall(r"""(?:src|href)\s*=\s*['"]?(?![\w.-]+/report\.html['"])[^'" >]+""", page)
    found += re.findall(r"<script|<link|<img|<iframe|@import|url\(", page)
    found += [url for url in re.findall(r"https?://[^\s'\"<>]+", page) if url != "http://www.w3.org/2000/svg"]
    return found


def test_report_html_is_self_contained(run):
    pages = [t.output_dir / "report.html" for t in run.targets] + [run.targets[0].output_dir.parent / "report.html"]
    for page in pages:
        text = page.read_text()
        assert _external_references(text) == [], page
        assert text.count("<svg") >= 1
    target_page = pages[0].read_text()
    for shown in ("PASSED", "probabilities", "PSNR dB", "top-5 agree", "CONV_2D", "tensorflow", "check_parity.py", "bundled", "parameters"):
        assert shown in target_page
    int8_page = (_target(run, "phone-int8").output_dir / "report.html").read_text()
    assert "Error traced to its source" in int8_page and "int8 weights alone" in int8_page  # the traced int8 error
    assert "tensor arena" in (_target(run, "microcontroller").output_dir / "report.html").read_text()
    assert _external_references('<img src="https://example.org/x.png">')  # the check itself can fail


def test_report_html_renders_in_headless_chromium(run, tmp_path):
    model_dir = run.targets[0].output_dir.parent
    for page in (_target(run, "phone-int8").output_dir / "report.html", model_dir / "report.html"):
        spread, covered = ink(screenshot(page, tmp_path / f"{page.parent.name}.png"))
        assert spread > 15 and covered > 0.02, f"{page} looks blank: grey std {spread:.1f}, {covered:.1%} inked"
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert ink(screenshot(blank, tmp_path / "blank.png"))[1] < 0.01  # the measure tells a blank page apart


def test_a_failing_artifact_reads_as_failed(run, digits, digits_data, tmp_path):
    phone = _target(run, "phone-f32")
    shutil.copyfile(phone.artifact.path, tmp_path / "model.tflite")
    artifact = dataclasses.replace(phone.artifact, path=tmp_path / "model.tflite", files=(tmp_path / "model.tflite",))
    tamper_tflite_weights(artifact.path)
    reference = run_reference(digits, digits_data.heldout)
    parity = check_parity(artifact, "litert", digits_data.heldout, reference, classifier=True, tolerance=phone.parity.tolerance)
    assert not parity.passed
    report = dict(phone.report, parity=parity.to_json(), passed=False)
    jsonschema.validate(json.loads(json.dumps(report)), schema_for(TARGET_REPORT_KIND), cls=jsonschema.Draft202012Validator)
    page = render_target_report(report)
    assert "FAILED" in page and "PASSED" not in page
    assert "class='num bad'" in page and html.escape(parity.outputs[0].violations[0]) in page
