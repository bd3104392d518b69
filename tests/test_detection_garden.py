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


def test_a_garden_exported_detector_converts_with_detection_parity(garden_export, tmp_path):
    model = edgezoo.load(str(garden_export))
    assert model.task == "detection" and "image_info" in {o.name for o in model.outputs}
    heldout = edgezoo.load("shapes-detector").load_data().heldout["images"]
    data = tmp_path / "images.npz"
    np.savez(data, inputs=heldout)
    result = edgezoo.convert(model, targets=("onnx",), out_dir=tmp_path / "out", calibration=str(data))
    (target,) = result.targets
    assert target.passed, target.parity.summary()
    detections = target.parity.outputs[0]
    assert detections.name == "detections" and detections.metrics["reference_detections"] >= 20
    # The Garden's boxes are in pixels: normalised before matching, so the pictures' boxes lie within the image.
    boxes = [d["box"] for image in target.report["detections"]["reference"] for d in image]
    assert boxes and max(max(b) for b in boxes) <= 1.0


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
