"""Detectors from the Model Garden's own tools: a SavedModel exported by official.vision.serving.detection (the Garden's
DetectionModule) loads from disk as a detector and converts with detection parity; `garden:` sources parse and refuse
bad options before anything is built."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import edgezoo
from edgezoo.errors import EdgezooError, SourceNotFoundError, UsageError
from tests.loopback_server import loopback  # noqa: F401  (fixture)

MODEL_DIR = Path(edgezoo.__file__).parent / "zoo" / "bundled" / "shapes_detector"


@pytest.fixture(scope="session")
def garden_export(tmp_path_factory):
    """The bundled detector's weights in a Garden RetinaNet, exported by the Garden's DetectionModule (float input,
    NMS v2, boxes in pixels, integer classes and count, plus image_info)."""
    from edgezoo import _tf
    from edgezoo.detection.garden_model import DetectorSpec, build, model_config, restore_from_export

    tf = _tf.tf()
    from official.core import exp_factory
    from official.vision.serving import detection

    spec = DetectorSpec.from_json(__import__("json").loads((MODEL_DIR / "detector.json").read_text())["spec"])
    model = build(spec)
    restore_from_export(model, spec, MODEL_DIR / "saved_model")
    params = exp_factory.get_exp_config(spec.experiment)
    params.task.model = model_config(spec)
    module = detection.DetectionModule(params=params, model=model, batch_size=1, input_image_size=[spec.input_size] * 2,
                                       input_type="tflite")  # the Garden's name for "already preprocessed float images"
    folder = tmp_path_factory.mktemp("garden-export") / "retinanet"
    tf.saved_model.save(module, str(folder), signatures=module.get_inference_signatures({"tflite": "serving_default"}))
    return folder


def test_a_garden_exported_detector_loads_as_a_detector_and_matches_edgezoos_export(garden_export):
    """The Garden's own export (boxes in pixels, integer classes and count, image_info beside them) against edgezoo's
    export of the same weights, through the detection check: the same boxes once normalised, the same class ids."""
    from edgezoo.detection.reference import run_signature
    from edgezoo.targets import resolve_profile
    from edgezoo.tasks import detection as task
    from edgezoo.validate.detection import detection_report

    model = edgezoo.load(str(garden_export))
    assert model.task == "detection" and "image_info" in {o.name for o in model.outputs}
    assert task.target_model(model, resolve_profile("phone")) is model  # no tflite_postprocess signature: v2 everywhere
    bundled = edgezoo.load("shapes-detector")
    heldout = bundled.load_data().heldout["images"][:12]
    garden = run_signature(model.saved_model_dir, "serving_default", {"inputs": heldout})
    assert np.max(garden["detection_boxes"]) > 2  # pixels, as the Garden writes them
    ours = task.run_reference(bundled, {"images": heldout}).v2
    tolerance = resolve_profile("onnx").tolerance_for(__import__("edgezoo.formats.base").formats.base.Quantization.FLOAT32)
    parity, pictures = detection_report(ours, garden, runtime="tensorflow", tolerance=tolerance,
                                        score_threshold=task.score_threshold(bundled), image_size=task.image_size(model))
    detections = parity.outputs[0]
    assert parity.passed, parity.summary()
    assert detections.metrics["matched_detections"] >= 20 and detections.metrics["mean_matched_iou"] > 0.999
    # The Garden keeps detections down to its 0.05 threshold; those under edgezoo's 0.3 + margin are excused, not matched.
    assert detections.metrics["artifact_detections"] >= detections.metrics["reference_detections"]


@pytest.mark.parametrize("source, error", [
    ("garden:retinanet_mobile_coco?backbone=resnet50", UsageError),
    ("garden:retinanet_mobile_coco?input_size=100", UsageError),
    ("garden:retinanet_mobile_coco?classes=0", UsageError),
    ("garden:no_such_experiment", SourceNotFoundError),
    ("garden:retinanet_mobile_coco?classes=3&checkpoint=/nonexistent/ckpt-1", SourceNotFoundError),
])
def test_bad_garden_sources_are_refused_with_what_to_do(source, error, tmp_path):
    with pytest.raises(error) as raised:
        edgezoo.load(source, cache_dir=tmp_path)
    assert isinstance(raised.value, EdgezooError) and ("garden" in str(raised.value) or "Garden" in str(raised.value))


def test_garden_detectors_are_listed_without_building_or_importing_the_garden():
    import subprocess

    code = ("import sys; from edgezoo.zoo.catalog import list_models; "
            "found = [e.source for e in list_models(task='detection')]; "
            "assert 'official' not in sys.modules, 'imported the Garden'; print(found)")
    listed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "shapes-detector" in listed and "garden:retinanet_mobile_coco?backbone=mobilenetv2" in listed


# --- garden: sources with a checkpoint from a URL, and without one (random weights) ---------------------------------

SMALL = {"input_size": 128, "classes": 3, "filter_size_scale": 0.35}
SMALL_SOURCE = "garden:retinanet_mobile_coco?backbone=mobilenetv2&input_size=128&classes=3&filter_size_scale=0.35"


@pytest.fixture(scope="session")
def garden_checkpoint(tmp_path_factory):
    """A small Garden RetinaNet built here (its own random initialisation), saved as a TensorFlow checkpoint and packed as
    a .tar.gz the way a training job's folder is published; with the sum of each of its variables, to recognise them."""
    import io
    import tarfile

    from edgezoo import _tf
    from edgezoo.detection.garden_model import build
    from edgezoo.zoo.garden import spec_for

    tf = _tf.tf()
    model = build(spec_for("retinanet_mobile_coco", SMALL))
    folder = tmp_path_factory.mktemp("garden-ckpt")
    tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))  # ckpt-1.index, ckpt-1.data-*, and the `checkpoint` file
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        for file in sorted(folder.iterdir()):
            archive.add(file, arcname=file.name)
    return packed.getvalue(), _fingerprint(model.variables)


def _fingerprint(variables) -> list[float]:
    return sorted(round(float(np.sum(v.numpy(), dtype=np.float64)), 4) for v in variables)


def _saved_variables(model) -> list[float]:
    from edgezoo import _tf

    loaded = _tf.tf().saved_model.load(str(model.saved_model_dir))
    return _fingerprint(loaded.signatures["heads"].variables)


def test_a_garden_checkpoint_from_a_url_is_fetched_verified_and_restored(garden_checkpoint, loopback, tmp_path):  # noqa: F811
    import hashlib

    archive, weights = garden_checkpoint
    url = loopback.serve("models/retinanet-small.tar.gz", archive)
    digest = hashlib.sha256(archive).hexdigest()
    model = edgezoo.load(f"{SMALL_SOURCE}&checkpoint={url}&sha256={digest}", cache_dir=tmp_path)
    assert model.details["checkpoint"] == url and not model.details["random_weights"]
    assert [p.parent.parent.parent.name for p in (tmp_path / "files").rglob("ckpt-1.index")] == [loopback.url.split("//")[1]]  # <cache>/files/<host>/<path>, like other weights
    restored = _saved_variables(model)
    assert len(restored) == len(weights) and np.allclose(restored, weights, atol=1e-3)  # the checkpoint's weights, not new ones
    requests = len(loopback.requests)
    again = edgezoo.load(f"{SMALL_SOURCE}&checkpoint={url}&sha256={digest}", cache_dir=tmp_path)
    assert again.saved_model_dir == model.saved_model_dir and len(loopback.requests) == requests  # cached: not fetched again


def test_a_garden_checkpoint_with_the_wrong_sha256_is_refused_and_nothing_is_kept(garden_checkpoint, loopback, tmp_path):  # noqa: F811
    archive, _ = garden_checkpoint
    url = loopback.serve("models/retinanet-small.tar.gz", archive)
    wrong = "0" * 64
    with pytest.raises(EdgezooError) as raised:
        edgezoo.load(f"{SMALL_SOURCE}&checkpoint={url}&sha256={wrong}", cache_dir=tmp_path)
    assert wrong in str(raised.value) and raised.value.exit_code == 2
    assert not list(tmp_path.rglob("ckpt-1.index")) and not (tmp_path / "garden").exists()  # nothing extracted, nothing built


def test_parity_on_a_random_weight_garden_detector_refuses_to_mean_anything(garden_checkpoint, tmp_path):
    """Without a checkpoint the weights are random: the original detects nothing on the shapes images, and the check
    says so instead of passing (an artifact that also finds nothing would otherwise match it perfectly)."""
    from edgezoo.targets import resolve_profile
    from edgezoo.formats.base import Quantization
    from edgezoo.tasks import detection as task
    from edgezoo.validate.detection import detection_report

    model = edgezoo.load(SMALL_SOURCE, cache_dir=tmp_path)
    assert model.details["random_weights"] and "random weights" in model.description
    assert _saved_variables(model) != garden_checkpoint[1]  # a fresh initialisation of its own
    images = edgezoo.load("shapes-detector").load_data().heldout["images"][:6]
    reference = task.run_reference(model, {model.inputs[0].name: images})
    for outputs in (reference.v2, reference.tflite):
        assert float(np.sum(outputs["num_detections"])) == 0
        parity, _ = detection_report(outputs, outputs, runtime="litert", tolerance=resolve_profile("phone").tolerance_for(Quantization.FLOAT32),
                                     score_threshold=task.score_threshold(model), image_size=task.image_size(model))
        assert not parity.passed and parity.exit_code == 1
        assert "detects nothing" in parity.outputs[0].violations[0] and "checkpoint" in parity.outputs[0].violations[0]


def test_a_garden_exported_detector_converts_to_onnx_with_detection_parity(garden_export, tmp_path):
    """The Garden's own export (its NMS as ordinary ops) on a real runtime: ONNX Runtime's boxes matched to TensorFlow's
    on the shapes images (given as the check's inputs: a SavedModel from disk has no data of its own)."""
    bundled = edgezoo.load("shapes-detector")
    images = tmp_path / "shapes.npz"
    np.savez(images, inputs=bundled.load_data().heldout["images"])  # already preprocessed, as the export's float input takes them
    run = edgezoo.convert(str(garden_export), targets=("onnx",), calibration=str(images), out_dir=tmp_path / "out", force=True)
    (result,) = run.targets
    assert result.passed, result.parity.summary()
    assert result.report["calibration"]["origin"] != "synthetic" and not result.report["calibration"]["synthetic"]
    detections = result.parity.outputs[0]
    assert detections.name == "detections" and detections.metrics["reference_detections"] >= 20
    assert detections.metrics["detection_recall"] >= 0.98 and detections.metrics["mean_matched_iou"] > 0.99
    assert {"NonMaxSuppression"} & set(result.artifact.ops) or {"TopK", "Loop"} <= set(result.artifact.ops), result.artifact.ops
