"""TF.js in a real headless Chromium (Debian's, through Playwright), served from a loopback HTTP server."""

import json
import urllib.error
import urllib.request

import pytest

from edgezoo.formats.base import Quantization
from edgezoo.pipeline import resolve_targets
from edgezoo.formats.tfjs import run_browser as tfjs_browser
from tests.conftest import run_edgezoo
from tests.edge_formats import assert_caught, convert, copy_artifact, parity, tampered_tfjs_copy


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the whole module; the runner uses the same shared session."""
    session = tfjs_browser.shared_session()
    yield session
    tfjs_browser.close_shared_session()


@pytest.fixture(scope="module")
def convert_all(tmp_path_factory):
    out = tmp_path_factory.mktemp("all")
    return out, run_edgezoo("convert", "digits-cnn", "--target", "all", "--out", out, "--json")


def test_all_targets_include_browser_and_onnx():
    assert {"browser", "onnx"} <= {profile.name for profile in resolve_targets(("all",))}


@pytest.mark.parametrize("target, runtime, main_file", [("browser", "tfjs-browser", "tfjs_model/model.json"), ("onnx", "onnxruntime", "model.onnx")])
def test_cli_convert_all_checks_browser_and_onnx_on_their_runtimes(convert_all, target, runtime, main_file):
    out, result = convert_all
    assert result.returncode == 0, result.stderr
    targets = {t["target"]: t for t in json.loads(result.stdout)["targets"]}
    entry = targets[target]
    assert entry["passed"] and entry["report"]["parity"]["runtime"] == runtime
    report = json.loads((out / "digits-cnn" / target / "report.json").read_text())
    assert report["artifact"]["path"] == main_file and (out / "digits-cnn" / target / main_file).exists()
    assert report["parity"]["num_samples"] == 360 and report["parity"]["outputs"][0]["name"] == "probabilities"
    assert report["parity"]["outputs"][0]["top1_agreement"] >= 0.99


def test_browser_target_defaults_to_float16_weights(convert_all):
    out, _ = convert_all
    report = json.loads((out / "digits-cnn" / "browser" / "report.json").read_text())
    assert report["quantization"] == "float16" and report["artifact"]["weight_quantization"] == "float16"
    assert report["target_profile"]["format_options"]["shard_size_bytes"] == 4 * 1024 * 1024


def test_digits_in_the_browser_on_wasm(browser, digits, digits_data, tmp_path):
    artifact = convert(digits, "tfjs", tmp_path)
    report = parity(artifact, "tfjs-browser", digits, digits_data.heldout, classifier=True)
    assert report.passed, report.summary()
    assert browser.last_backend == "wasm"
    assert report.outputs[0].metrics["top1_agreement"] == 1.0


def test_keras_application_passes_parity_in_the_browser(browser, mobilenet_tfjs, mobilenet_v2):
    model, inputs = mobilenet_v2
    report = parity(mobilenet_tfjs, "tfjs-browser", model, inputs, classifier=True)
    assert report.passed, report.summary()
    assert browser.last_backend == "wasm"


def test_tampered_shard_is_caught_in_the_browser(browser, mobilenet_tfjs, mobilenet_v2, tmp_path):
    model, inputs = mobilenet_v2
    assert_caught(parity(tampered_tfjs_copy(mobilenet_tfjs, tmp_path), "tfjs-browser", model, inputs, classifier=True))


def test_truncated_shard_is_reported_with_the_page_error(browser, digits, digits_data, tmp_path):
    artifact = copy_artifact(convert(digits, "tfjs", tmp_path / "good", Quantization.FLOAT16), tmp_path / "broken")
    shard = next(f for f in artifact.files if f.suffix == ".bin")
    shard.write_bytes(shard.read_bytes()[:1000])
    report = parity(artifact, "tfjs-browser", digits, digits_data.heldout, classifier=True)
    assert not report.passed
    assert "in Chromium could not run" in report.error and "should have 4608 values" in report.error


def test_loopback_server_serves_only_what_is_mounted(tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    server = tfjs_browser.LoopbackServer()
    try:
        server.mount("/files/", tmp_path / "public")
        server.mount("/drop/", tmp_path / "drop")
        assert server.origin.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(f"{server.origin}/files/a.json").read() == b"{}"
        for path in ("/files/../secret.txt", "/files/%2e%2e/secret.txt", "/nothing/a.json"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"{server.origin}{path}")
        with pytest.raises(urllib.error.HTTPError, match="403"):  # not a writable mount
            urllib.request.urlopen(urllib.request.Request(f"{server.origin}/files/b.bin", data=b"x", method="PUT"))
    finally:
        server.close()

