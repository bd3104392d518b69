"""A detector artifact checked after the fact: `edgezoo validate` judges its detections (matched boxes, by output name,
the .tflite against the TFLite op's numpy twin), and the device bundle's check_parity.py does the same on the device's
runtime alone; both catch boxes shifted in the file."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.test_device_check import _device_env, device_python  # noqa: F401  (the device venv fixture)


@pytest.fixture(scope="session")
def phone_detector(strict_int8):
    """A real converted detector: the bundled one as int8 for a phone NPU with float fallback (tests/conftest.py; shared
    with tests/test_detection_int8.py, so the session converts once): TFLite_Detection_PostProcess fed by int8 heads."""
    assert strict_int8.passed, strict_int8.parity.summary()
    return strict_int8


def _postprocess_anchors(model):
    """The constant behind the file's TFLite_Detection_PostProcess op's anchors (its third input, centre-size y, x, h,
    w), through a DEQUANTIZE where the weights are float16 or int8."""
    subgraph = model.subgraphs[0]
    producers = {out: op for op in subgraph.operators for out in op.outputs}
    for op in subgraph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode and code.customCode.decode() == "TFLite_Detection_PostProcess":
            tensor = op.inputs[2]
            while model.buffers[subgraph.tensors[tensor].buffer].data is None:
                tensor = producers[tensor].inputs[0]
            return subgraph.tensors[tensor]
    raise AssertionError("no TFLite_Detection_PostProcess op in the file")


def shifted_boxes(source, target, shift: float = 0.4):
    """A copy of the .tflite whose every detection box is moved `shift` of the image to the right: the op's anchors'
    x centres moved in the file (a valid model, only wrong)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(source))
    anchors = _postprocess_anchors(model)
    from tensorflow.lite.python import schema_py_generated as schema

    buffer = model.buffers[anchors.buffer]
    dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}[anchors.type]
    values = np.frombuffer(bytes(buffer.data), dtype).reshape(-1, 4).copy()
    values[:, 1] += shift
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    flatbuffer_utils.write_model(model, str(target))
    return target


def reordered_outputs(source, target):
    """A copy of the .tflite with its subgraph's outputs in reverse order (num_detections first)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(source))
    model.subgraphs[0].outputs = np.array(list(model.subgraphs[0].outputs)[::-1], dtype=np.int32)
    flatbuffer_utils.write_model(model, str(target))
    return target


def _validate(*args) -> tuple[int, dict]:
    """The CLI's `validate --json` in this process (the session's reference run is reused; a subprocess would redo it)."""
    import contextlib
    import io

    from edgezoo.cli import run

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run(["validate", *map(str, args), "--json"])
    return code, json.loads(stdout.getvalue())


def test_validate_command_judges_a_detector_by_its_boxes_whatever_the_output_order(phone_detector, tmp_path):
    artifact = reordered_outputs(phone_detector.artifact.path, tmp_path / "reordered.tflite")
    from ai_edge_litert.interpreter import Interpreter

    positional = [d["name"] for d in Interpreter(model_path=str(artifact)).get_output_details()]
    original = [d["name"] for d in Interpreter(model_path=str(phone_detector.artifact.path)).get_output_details()]
    assert positional == original[::-1]  # the file's own order did change
    code, result = _validate("shapes-detector", artifact, "--out", tmp_path / "out")
    assert code == 0, result["report"]["parity"]
    report = result["report"]
    (detections, *heads) = report["parity"]["outputs"]
    assert detections["name"] == "detections" and detections["kind"] == "detections"
    assert all(h["name"] in ("raw_boxes", "raw_scores") for h in heads)  # extra outputs only as the task judges them
    assert detections["detection_recall"] >= 0.95 and detections["detection_precision"] >= 0.95
    assert detections["reference_detections"] >= 40 and detections["mean_matched_iou"] >= 0.9
    assert report["validated"]["outputs"]["detection_boxes"] == "detection_boxes"  # matched by name
    assert len(report["detections"]["reference"]) == len(report["detections"]["artifact"]) >= 1  # the pictures' data
    manifest = json.loads((tmp_path / "out" / "shapes-detector" / "validate-phone" / "device_check" / "tolerances.json").read_text())
    assert manifest["detection"]["score_threshold"] == pytest.approx(0.3) and "min_detection_recall" in manifest["tolerance"]


def test_validate_command_fails_a_detector_with_shifted_boxes(phone_detector, tmp_path):
    artifact = shifted_boxes(phone_detector.artifact.path, tmp_path / "shifted.tflite")
    code, result = _validate("shapes-detector", artifact, "--out", tmp_path / "out")
    assert code == 1 and not result["passed"]
    detections = result["report"]["parity"]["outputs"][0]
    assert detections["name"] == "detections" and detections["detection_recall"] < 0.5
    assert any("detection_recall" in v for v in detections["violations"])


def _on_device(python, folder, *args):
    command = [str(python), "device_check/check_parity.py", "--json", *args]
    return subprocess.run(command, cwd=folder, env=_device_env(folder), capture_output=True, text=True, timeout=120)


def test_the_device_bundle_of_a_detector_matches_boxes_on_tflite_runtime(phone_detector, device_python, tmp_path):  # noqa: F811
    device = tmp_path / "device"
    device.mkdir()
    shutil.copytree(phone_detector.output_dir / "device_check", device / "device_check")
    shutil.copyfile(phone_detector.artifact.path, device / "model.tflite")
    done = _on_device(device_python, device)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["runtime"].startswith("tflite_runtime")
    detections = result["outputs"][0]
    assert detections["name"] == "detections" and detections["detection_recall"] >= 0.95 and detections["matched_detections"] >= 40
    host = next(o for o in phone_detector.parity.outputs if o.name == "detections").metrics
    if result["num_samples"] == phone_detector.parity.num_samples:  # the same golden inputs: nearly the same figures
        # (tflite-runtime is another build of the int8 kernels than the host's LiteRT: a box at the edge may move)
        assert abs(detections["matched_detections"] - host["matched_detections"]) <= 2, (detections, host)
    shifted_boxes(device / "model.tflite", device / "shifted.tflite")
    done = _on_device(device_python, device, "--model", "shifted.tflite")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = json.loads(done.stdout)["outputs"][0]
    assert failed["detection_recall"] < 0.5 and any("detection_recall" in v for v in failed["violations"])


def test_the_device_scripts_detection_matching_agrees_with_edgezoos():
    """Both sides of the same synthetic outputs: pixel boxes, background slots, uninitialised slots past the count, a
    miss near the threshold (excused), a wrong class, a shifted box."""
    from edgezoo.detection.metrics import split
    from edgezoo.validate.detection import compare_detections
    from edgezoo.validate.device_check import device_script

    rng = np.random.default_rng(0)
    count, slots = 6, 5
    corner = rng.uniform(0, 80, (count, slots, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(10, 40, (count, slots, 2))], axis=-1).astype(np.float32)
    reference = {"detection_boxes": boxes, "detection_classes": rng.integers(0, 4, (count, slots)).astype(np.float32),
                 "detection_scores": rng.uniform(0.3, 1.0, (count, slots)).astype(np.float32),
                 "num_detections": rng.integers(1, slots + 1, count).astype(np.float32)}
    candidate = {k: v.copy() for k, v in reference.items()}
    candidate["detection_boxes"][0, 0] += 30  # shifted off its partner
    candidate["detection_classes"][1, 0] = (candidate["detection_classes"][1, 0] % 3) + 1  # another class
    candidate["detection_scores"] += rng.uniform(-0.04, 0.04, (count, slots)).astype(np.float32)
    candidate["detection_boxes"][:, -1] = 1e38  # past the count where num_detections < slots: never read
    candidate["num_detections"][2] -= 1
    expected, _ = compare_detections(split(reference, (128, 128), 0), split(candidate, (128, 128), 0), score_threshold=0.3, margin=0.05)
    script = device_script()
    settings = {"score_threshold": 0.3, "score_margin": 0.05, "iou_threshold": 0.5}
    found = script.detection_metrics(script.split_detections(reference, (128, 128), 0), script.split_detections(candidate, (128, 128), 0),
                                     settings)
    for name in (*script.DETECTION_METRICS, "matched_detections", "reference_detections", "artifact_detections", "near_threshold_unmatched"):
        assert found[name] == pytest.approx(expected[name], abs=1e-12), name
    assert 0 < found["detection_recall"] < 1  # the case is not trivial


def test_an_output_map_is_refused_for_a_detector_with_what_to_do(phone_detector, tmp_path):
    from edgezoo.errors import UsageError
    from edgezoo.validate_artifact import ValidateOptions, validate_artifact

    options = ValidateOptions(out_dir=tmp_path, output_map={"detection_boxes": "detection_scores"})
    with pytest.raises(UsageError, match="matched by name") as raised:
        validate_artifact("shapes-detector", phone_detector.artifact.path, options)
    assert "detection_boxes" in str(raised.value) and not list(tmp_path.iterdir())  # refused before anything is written
