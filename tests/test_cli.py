"""The CLI as users run it: quiet, scriptable, and clear about bad input (exit 2, one line, nothing left behind)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgezoo.cli import build_parser
from tests.conftest import REPO, run_edgezoo

NOISE = ("tensorflow", "W0000", "I0000", "XNNPACK", "absl", "oneDNN", "cpu_feature_guard", "Traceback")


def assert_clean_usage_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    error_lines = [line for line in lines if not line.startswith("... ")]
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("edgezoo: error: ")
    for word in words:
        assert word in error_lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "build"
    return out, run_edgezoo("convert", "digits-cnn", "--target", "phone", "--out", out)


def test_convert_succeeds_quietly(first_run):
    out, result = first_run
    assert result.returncode == 0, result.stderr
    assert (out / "digits-cnn" / "phone" / "model.tflite").exists()
    assert (out / "digits-cnn" / "phone" / "report.json").exists()
    assert "passed" in result.stdout and str(out / "digits-cnn" / "phone" / "report.json") in result.stdout
    for line in result.stderr.splitlines():
        assert line.startswith("... "), f"unexpected log line: {line!r}"
        assert not any(noise in line for noise in NOISE), line


def test_existing_output_is_kept_without_force_and_replaced_with_it(first_run):
    out, _ = first_run
    artifact = out / "digits-cnn" / "phone" / "model.tflite"
    before = artifact.read_bytes()
    (out / "digits-cnn" / "phone" / "mine.txt").write_text("a user's file")
    result = run_edgezoo("convert", "digits-cnn", "--out", out, "--quantize", "int8")
    assert_clean_usage_error(result, "already exists", "--force")
    assert artifact.read_bytes() == before and (out / "digits-cnn" / "phone" / "mine.txt").exists()

    forced = run_edgezoo("convert", "digits-cnn", "--out", out, "--quantize", "int8", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert artifact.read_bytes() != before and not (out / "digits-cnn" / "phone" / "mine.txt").exists()
    assert [p.name for p in (out / "digits-cnn").iterdir() if p.name.startswith(".")] == []  # no staging or old folders


def test_json_output_is_machine_readable(tmp_path):
    result = run_edgezoo("convert", "digits-cnn", "--out", tmp_path / "o", "--quantize", "dynamic-int8", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passed"] is True
    (target,) = data["targets"]
    assert target["report"]["quantization"] == "dynamic-int8"
    assert target["report"]["parity"]["outputs"][0]["top1_agreement"] >= 0.97
    assert result.stderr == ""  # --json: nothing but the JSON


def test_parity_failure_exits_1(tmp_path):
    profile = tmp_path / "strict.toml"
    profile.write_text('name = "strict"\nformat = "tflite"\nruntime = "litert"\nquantization = "int8"\n[tolerances.int8]\nmin_snr_db = 200\n')
    result = run_edgezoo("convert", "digits-cnn", "--target", profile, "--out", tmp_path / "o", "--no-auto-fallback")
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stdout and "snr_db" in result.stdout
    assert (tmp_path / "o" / "digits-cnn" / "strict" / "report.json").exists()


def test_unknown_source(tmp_path):
    result = run_edgezoo("convert", "digits-cnm", "--out", tmp_path / "o")
    assert_clean_usage_error(result, "digits-cnm", "digits-cnn")
    assert not (tmp_path / "o").exists()


def test_unknown_target(tmp_path):
    result = run_edgezoo("convert", "digits-cnn", "--target", "toaster", "--out", tmp_path / "o")
    assert_clean_usage_error(result, "toaster", "phone")
    assert not (tmp_path / "o").exists()


def test_missing_calibration_file(tmp_path):
    result = run_edgezoo("convert", "digits-cnn", "--out", tmp_path / "o", "--calibration", tmp_path / "nope.npz")
    assert_clean_usage_error(result, "nope.npz", "does not exist")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((10, 8, 8), np.float32), ("shape (10, 8, 8)", "[N, 8, 8, 1]")),
        (np.zeros((10, 28, 28, 1), np.float32), ("shape (10, 28, 28, 1)",)),
        (np.zeros((10, 8, 8, 1), np.int64), ("dtype int64", "float32")),
        (np.full((10, 8, 8, 1), np.nan, np.float32), ("NaN",)),
    ],
    ids=["missing-channel", "wrong-size", "integer-dtype", "nan"],
)
def test_bad_calibration_array(tmp_path, array, words):
    np.savez(tmp_path / "calib.npz", image=array)
    result = run_edgezoo("convert", "digits-cnn", "--out", tmp_path / "o", "--quantize", "int8", "--calibration", tmp_path / "calib.npz")
    assert_clean_usage_error(result, "calib.npz", *words)
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_edgezoo("convert", "digits-cnn", "--out", blocker / "build")
    assert_clean_usage_error(result, "cannot write", str(blocker / "build"))
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("kind", ["h5", "keras", "savedmodel", "savedmodel-truncated-variables"])
def test_corrupt_model_file(tmp_path, kind):
    if kind == "savedmodel":
        source = tmp_path / "broken_savedmodel"
        source.mkdir()
        (source / "saved_model.pb").write_bytes(b"\x00garbage" * 100)
    elif kind == "savedmodel-truncated-variables":  # the signature reads fine from saved_model.pb; the weights are cut short
        import shutil

        source = tmp_path / "truncated_savedmodel"
        shutil.copytree(REPO / "edgezoo" / "zoo" / "bundled" / "digits_cnn" / "saved_model", source)
        shard = next((source / "variables").glob("variables.data-*"))
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    else:
        source = tmp_path / f"broken.{kind}"
        source.write_bytes(b"this is not a model" * 100)
    result = run_edgezoo("convert", source, "--out", tmp_path / "o")
    assert_clean_usage_error(result, str(source))
    assert not (tmp_path / "o").exists()


def test_help_on_every_command():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert "convert" in commands
    for command in [[], *([name] for name in commands)]:
        result = subprocess.run([sys.executable, "-m", "edgezoo", *command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage: edgezoo" in result.stdout


def test_import_and_help_do_not_load_tensorflow():
    code = "import sys, edgezoo, edgezoo.cli; edgezoo.cli.build_parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_convert_flags_reach_every_option_by_name():
    from edgezoo.options import ConvertOptions, from_namespace

    args = build_parser().parse_args([
        "convert", "digits-cnn", "-t", "phone", "-t", "onnx", "--out", "x", "--quantize", "int8", "--calibration", "c.npz",
        "--calibration-samples", "7", "--calibration-feature", "image=img", "--force", "--seed", "3", "--prune", "0.5",
        "--keep-float", "conv1", "--no-auto-fallback", "--offline", "--cache-dir", "cache", "--mirror", "m", "--trust-model",
    ])
    options = from_namespace(ConvertOptions, args)
    assert options.targets == ("phone", "onnx") and str(options.out_dir) == "x" and options.quantize.value == "int8"
    assert str(options.calibration) == "c.npz" and options.max_calibration_samples == 7
    assert options.calibration_features == (("image", "img"),) and options.keep_float == ("conv1",)
    assert options.force and options.seed == 3 and options.prune == 0.5 and not options.auto_fallback
    assert options.offline and str(options.cache_dir) == "cache" and options.mirror == "m" and options.trust_model
    defaults = from_namespace(ConvertOptions, build_parser().parse_args(["convert", "digits-cnn"]))
    assert defaults == ConvertOptions()


def test_a_reader_that_goes_away_is_not_an_error():
    """`edgezoo zoo list | head -1`: the pipe closes under the CLI (here before it writes anything); it stops quietly."""
    process = subprocess.Popen([sys.executable, "-m", "edgezoo", "zoo", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
