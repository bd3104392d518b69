"""Shared fixtures: the bundled model, its data, and a way to run the real CLI in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The jobs' workers call tests/job_faults.py before each job: a fault a test asks for with EDGEZOO_TEST_JOB_FAULT (none by default).
os.environ.setdefault("EDGEZOO_JOB_HOOK", str(Path(__file__).resolve().with_name("job_faults.py")) + ":inject")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits():
    import edgezoo

    return edgezoo.load("digits-cnn")


@pytest.fixture(scope="session")
def digits_data(digits):
    from edgezoo.calibration import from_model_data

    return from_model_data(digits)


# Float32 variants of built-in targets, for tests that tamper with the weights (float32 buffers).
FLOAT32_PROFILES = {"phone-f32": "phone", "browser-f32": "browser"}
EVERY_RUNTIME = ("phone-f32", "phone-int8", "onnx", "browser-f32", "microcontroller")


@pytest.fixture(scope="session")
def every_runtime(tmp_path_factory, digits):
    """digits-cnn converted in ONE run for a target of every runtime: LiteRT (float32, and int8 with int8
    input and output), ONNX Runtime, TF.js in the browser (float32) and TFLM. Returns the ConversionResult."""
    import edgezoo

    root = tmp_path_factory.mktemp("every_runtime")
    targets = []
    for name in EVERY_RUNTIME:
        if name in FLOAT32_PROFILES:
            (root / f"{name}.toml").write_text(f'extends = "{FLOAT32_PROFILES[name]}"\nquantization = "float32"\n')
            name = str(root / f"{name}.toml")
        targets.append(name)
    result = edgezoo.convert(digits, target=tuple(targets), out_dir=root / "out")
    assert result.passed, [t.parity.summary() for t in result.targets]
    return result


@pytest.fixture(scope="session")
def mobilenet_v2(tmp_path_factory):
    """A Keras application (MobileNetV2, alpha 0.35, 96x96, seeded) as a local SavedModel, and 12 inputs for it."""
    from tests.edge_formats import build_mobilenet_v2

    return build_mobilenet_v2(tmp_path_factory.mktemp("mobilenet_v2") / "saved_model")


@pytest.fixture(scope="session")
def mobilenet_tfjs(tmp_path_factory, mobilenet_v2):
    """That MobileNetV2 as a float32 TF.js graph model, for the Node and the browser runners."""
    from tests.edge_formats import convert

    return convert(mobilenet_v2[0], "tfjs", tmp_path_factory.mktemp("mobilenet_tfjs"))


def side_environment(folder: Path, requirements: Path, *pip_flags: str) -> Path:
    """A small virtual environment of its own (.venv-device, .venv-mediapipe): made by `make install`, or here on first
    use, and remade when its requirements file changed (the stamp holds the requirements it was made from)."""
    import shutil

    import fcntl

    python = folder / "bin" / "python"
    stamp = folder / ".ready"
    wanted = requirements.read_text()
    # pytest -n 2: the other worker may be making the same environment; one makes it, the other waits.
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != wanted:
            shutil.rmtree(folder, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(folder)], check=True, timeout=120)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pip_flags, "-r", str(requirements)],
                           check=True, timeout=900)
            stamp.write_text(wanted)
    return python


def run_edgezoo(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a separate process, its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "edgezoo", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},  # the CLI must be quiet on its own
    )


@pytest.fixture
def cli():
    return run_edgezoo


# A phone profile in int8 (float input and output) with stricter box limits than the built-in one: the plain int8
# detector's boxes (mean matched IoU about 0.96 measured) miss it, so the float fallback has to work for it. (With int8
# input and output, ai-edge-quantizer 0.10 points the NMS op at an int8 copy of the heads it also outputs: the fallback
# then makes no model that runs, which its report says.)
STRICT = """extends = "phone"
name = "phone-int8-strict"
quantization = "int8"

[tolerances.int8]
min_snr_db = 15.0
min_detection_recall = 0.98
min_detection_precision = 0.98
min_matched_iou = 0.975
max_score_difference = 0.2
detection_score_margin = 0.1
"""


@pytest.fixture(scope="session")
def strict_int8(tmp_path_factory):
    """The bundled detector to that profile, once per session (tests/test_detection_int8.py and test_detection_validate.py)."""
    import edgezoo

    folder = tmp_path_factory.mktemp("det-int8")
    (folder / "strict.toml").write_text(STRICT)
    run = edgezoo.convert("shapes-detector", targets=(str(folder / "strict.toml"),), out_dir=folder / "out", force=True)
    (result,) = run.targets
    return result


# Session fixtures that take long to build. Under `pytest -n 2` (make test) every test file runs whole on one worker,
# and the files that share one of these run on the same worker, so each is built once per suite, not once per worker.
_SHARED_FIXTURES = ("every_runtime", "mobilenet_v2", "mobilenet_tfjs", "detector", "strict_int8")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks into the node ids
def pytest_collection_modifyitems(config, items):
    by_file: dict[str, str] = {}
    for item in items:
        shared = next((name for name in _SHARED_FIXTURES if name in item.fixturenames), None)
        if shared and str(item.path) not in by_file:
            by_file[str(item.path)] = shared
    groups = {name: name for name in _SHARED_FIXTURES}
    groups["mobilenet_tfjs"] = "mobilenet_v2"  # built from it
    for item in items:
        shared = by_file.get(str(item.path))
        item.add_marker(pytest.mark.xdist_group(groups[shared] if shared else item.nodeid.split("::")[0]))
