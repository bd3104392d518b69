"""A failed verdict names the quantisation that passes, measured on the target's runtime (issue 23), and the flag to get it."""

import json

import pytest

import edgezoo
from tests.conftest import run_edgezoo

# float16 weights cannot reach 200 dB against the float32 original: the browser default misses this tolerance.
BROWSER_STRICT = 'extends = "browser"\nname = "browser-strict"\n[tolerances.float16]\nmin_snr_db = 200.0\n'
PHONE_STRICT = 'extends = "phone"\nname = "phone-strict"\n[tolerances.float16]\nmin_snr_db = 200.0\n'


@pytest.fixture(scope="module")
def strict_browser(tmp_path_factory):
    folder = tmp_path_factory.mktemp("suggest")
    profile = folder / "browser-strict.toml"
    profile.write_text(BROWSER_STRICT)
    first = run_edgezoo("convert", "digits-cnn", "--target", profile, "--out", folder / "out", "--json")
    return folder, profile, first


def test_the_browser_default_that_misses_names_what_passes_and_the_verdict_stands(strict_browser):
    folder, profile, first = strict_browser
    assert first.returncode == 1, first.stderr  # parity failed: the artifact is published with its verdict
    (target,) = json.loads(first.stdout)["targets"]
    suggestion = target["report"]["suggestion"]
    rows = {row["candidate"]: row for row in suggestion["candidates"]}
    assert suggestion["failed"] == "float16" and "float16" not in rows
    assert set(rows) == {"dynamic-int8", "float32"}  # the other modes the browser has a tolerance for, each measured
    passing = suggestion["passing"]
    assert passing in rows and rows[passing]["passed"] and rows[passing]["snr_db"] is not None
    assert suggestion["flag"] == f"--quantize {passing}" and suggestion["size_bytes"] == rows[passing]["size_bytes"]
    # The message says it where the user reads it: the report's page too.
    assert f"use --quantize {passing}" in suggestion["message"]
    page = (folder / "out" / "digits-cnn" / "browser-strict" / "report.html").read_text()
    assert "<h2>What passes</h2>" in page and f"use --quantize {passing}" in page


def test_the_suggested_flag_passes_when_run(strict_browser):
    """Measured, not guessed: the flag named, run, passes with the size the suggestion stated."""
    folder, profile, first = strict_browser
    suggestion = json.loads(first.stdout)["targets"][0]["report"]["suggestion"]
    second = run_edgezoo("convert", "digits-cnn", "--target", profile, *suggestion["flag"].split(), "--out", folder / "again")
    assert second.returncode == 0, second.stdout + second.stderr
    report = json.loads((folder / "again" / "digits-cnn" / "browser-strict" / "report.json").read_text())
    assert report["parity"]["passed"] and report["artifact"]["size_bytes"] == suggestion["size_bytes"]
    assert "suggestion" not in report  # a verdict that passed suggests nothing


def test_the_cli_line_names_the_flag(tmp_path):
    profile = tmp_path / "phone-strict.toml"
    profile.write_text(PHONE_STRICT)
    done = run_edgezoo("convert", "digits-cnn", "--target", profile, "--out", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "what passes:" in line]
    assert "float16 missed the tolerance" in line and "passes on litert (measured:" in line and "use --quantize " in line


def test_a_suggestion_that_cannot_run_is_unavailable_and_the_verdict_stands(tmp_path, monkeypatch):
    from edgezoo.quantize import auto

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(auto, "search", broken)
    profile = tmp_path / "phone-strict.toml"
    profile.write_text(PHONE_STRICT)
    result = edgezoo.convert("digits-cnn", target=str(profile), out_dir=tmp_path / "out")
    (target,) = result.targets
    assert target.exit_code == 1 and target.artifact.path.exists()
    assert target.report["suggestion"] == {"status": "unavailable", "error": "RuntimeError: injected failure"}
    assert {"name": "passing quantisation", "error": "RuntimeError: injected failure"} in target.report["diagnostics"]["unavailable"]


def test_no_suggest_measures_nothing_more(tmp_path):
    profile = tmp_path / "phone-strict.toml"
    profile.write_text(PHONE_STRICT)
    result = edgezoo.convert("digits-cnn", target=str(profile), out_dir=tmp_path / "out", suggest=False)
    (target,) = result.targets
    assert target.exit_code == 1 and "suggestion" not in target.report
