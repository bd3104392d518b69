"""Object detectors: the post-processing each target gets, its reference, and detection parity (matched boxes).

- LiteRT and TFLM (format tflite) convert the `tflite_postprocess` signature (TFLite_Detection_PostProcess); their
  reference is the original's `heads` signature in TensorFlow through the op's numpy twin (detection/postprocess.py),
  because TensorFlow returns zeros for that op.
- ONNX and TF.js convert `serving_default` (NMS as ordinary ops: one NonMaxSuppressionV4, which tf2onnx maps to ONNX
  NonMaxSuppression and TF.js runs as its own kernel); their reference is that signature run in TensorFlow.
- Both carry the pre-NMS heads as extra outputs (`raw_boxes`, `raw_scores`); their reference is the `heads` signature
  in TensorFlow, compared with the ordinary tensor metrics and the profile's tensor limits for the quantisation.
A detector SavedModel without those extra signatures (an export from the Garden's own tools) takes its
`serving_default` to every target, with that signature's TensorFlow outputs as the reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgezoo.detection.garden_model import (DETECTION_OUTPUTS, DETECTOR_FILE, HEAD_OUTPUTS, HEADS_SIGNATURE, TFLITE_SIGNATURE,
                                            DetectorSpec, flat_anchors, tflite_config)
from edgezoo.detection.postprocess import tflite_postprocess
from edgezoo.detection.reference import run_signature, run_signatures
from edgezoo.errors import RuntimeFailure

V2 = "serving_default"


@dataclasses.dataclass(frozen=True)
class DetectorReference:
    """The original's outputs on the held-out inputs, per post-processing."""

    v2: dict[str, np.ndarray]  # the detection outputs of serving_default
    tflite: dict[str, np.ndarray] | None  # heads through the numpy twin of the TFLite op; None without the heads signature
    heads: dict[str, np.ndarray] | None  # raw_boxes and raw_scores of the heads signature


def spec_of(model) -> DetectorSpec | None:
    """The detector's spec (detector.json beside its SavedModel), or None for a SavedModel exported elsewhere."""
    path = Path(model.saved_model_dir).parent / DETECTOR_FILE
    if not path.exists():
        return None
    import json

    return DetectorSpec.from_json(json.loads(path.read_text())["spec"])


def image_size(model) -> tuple[int, int]:
    shape = model.inputs[0].shape
    return int(shape[1]), int(shape[2])


_REFERENCES: dict[tuple, DetectorReference] = {}  # the same model on the same inputs runs once per process


def run_reference(model, inputs: dict[str, np.ndarray]) -> DetectorReference:
    import hashlib

    digest = hashlib.sha256(b"".join(np.ascontiguousarray(inputs[k]).tobytes() for k in sorted(inputs))).hexdigest()
    key = (str(model.saved_model_dir), model.sha256, digest)
    if key not in _REFERENCES:
        _REFERENCES[key] = _run_reference(model, inputs)
    return _REFERENCES[key]


def _run_reference(model, inputs: dict[str, np.ndarray]) -> DetectorReference:
    spec = spec_of(model)
    if spec is None:
        return DetectorReference(run_signature(model.saved_model_dir, V2, inputs), None, None)
    found = run_signatures(model.saved_model_dir, (V2, HEADS_SIGNATURE), inputs)
    heads = {name: found[HEADS_SIGNATURE][name] for name in HEAD_OUTPUTS}
    anchors = flat_anchors(spec) / spec.input_size  # the op gets normalised anchors (normalize_anchor_coordinates)
    tflite = tflite_postprocess(heads["raw_boxes"], heads["raw_scores"], anchors, tflite_config(spec))
    return DetectorReference({name: found[V2][name] for name in DETECTION_OUTPUTS}, tflite, heads)


def _uses_tflite_op(model, profile) -> bool:
    return profile.format == "tflite" and spec_of(model) is not None


_TFLITE_VARIANTS: dict[str, Path] = {}


def target_model(model, profile):
    """The TFLite targets' model: the `tflite_postprocess` signature as the serving signature of a SavedModel of its own,
    so that every step after (shapes, ops, int8 calibration and its per-layer trace) reads the usual signature."""
    if not _uses_tflite_op(model, profile):
        return model
    key = f"{model.saved_model_dir}:{model.sha256}"
    if key not in _TFLITE_VARIANTS:
        _TFLITE_VARIANTS[key] = _save_tflite_variant(model)
    from edgezoo.zoo.base import read_signature

    folder = _TFLITE_VARIANTS[key]
    inputs, outputs = read_signature(folder)
    return dataclasses.replace(model, saved_model_dir=folder, inputs=inputs, outputs=outputs)


def _save_tflite_variant(model) -> Path:
    import shutil

    from edgezoo import _tf
    from edgezoo._workspace import scratch_dir

    tf = _tf.tf()
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(model.saved_model_dir))
        concrete = loaded.signatures[TFLITE_SIGNATURE]
        holder = tf.Module()
        holder.weights = list(concrete.variables)
        folder = scratch_dir("detector-tflite-") / "saved_model"
        tf.saved_model.save(holder, str(folder), signatures={V2: concrete})
    shutil.copyfile(Path(model.saved_model_dir).parent / DETECTOR_FILE, folder.parent / DETECTOR_FILE)
    return folder


def target_reference(model, reference: DetectorReference, profile) -> dict[str, np.ndarray]:
    """The detections the target's post-processing should give, and the pre-NMS heads when the model exports them."""
    detections = reference.tflite if _uses_tflite_op(model, profile) else reference.v2
    return {**detections, **(reference.heads or {})}


def finish_artifact(model, profile, artifact):
    """A .tflite with the TFLite op gets the op's output shapes written in (TFLM does not resize them) and, when its
    outputs are int8, their known ranges (the converter calibrates them on uninitialised slots)."""
    if _uses_tflite_op(model, profile):
        from edgezoo.detection.tflite_shapes import write_postprocess_fixes

        config = tflite_config(spec_of(model))
        write_postprocess_fixes(artifact.path, config["max_detections"] * config["max_classes_per_detection"])
    return artifact


def score_threshold(model) -> float:
    spec = spec_of(model)
    return spec.score_threshold if spec is not None else float(model.details.get("score_threshold", 0.3))


def check_parity(artifact, model, profile, inputs, reference, tolerance):
    from edgezoo._tf import quiet_native_output
    from edgezoo.validate.detection import detection_report
    from edgezoo.validate.parity import ParityReport
    from edgezoo.formats import runner_for

    try:
        with quiet_native_output():
            candidate = runner_for(profile.runtime).run(artifact, inputs)
    except RuntimeFailure as exc:
        return ParityReport(profile.runtime, len(next(iter(inputs.values()))), (), tolerance, error=str(exc))
    heads = [name for name in HEAD_OUTPUTS if name in reference]  # every output of the artifact: a missing one is a violation
    parity, pictures = detection_report(reference, candidate, runtime=profile.runtime, tolerance=tolerance,
                                        score_threshold=score_threshold(model), image_size=image_size(model), background=0,
                                        heads=({n: reference[n] for n in heads}, candidate) if heads else None)
    return dataclasses.replace(parity, extra=pictures)


def golden_settings(model) -> dict:
    """What the device bundle's check_parity.py needs to match detections as check_parity does here."""
    return {"score_threshold": score_threshold(model), "image_size": list(image_size(model)), "background": 0}


def report_sections(parity, model, data) -> dict:
    """report.json's `detections` section: what each side detected on the held-out images, and mAP@0.5 against the
    ground truth where the model's data has boxes."""
    pictures = parity.extra
    if not pictures:
        return {}
    section = dict(pictures)
    truth = ground_truth(model) if data.origin == "bundled" else None  # the held-out inputs are the model's own
    if truth is not None:
        from edgezoo.detection.metrics import Detections, mean_average_precision

        boxes, classes = truth
        num_classes = len(model.labels) if model.labels else int(classes.max()) + 1

        def as_detections(rows):
            return [Detections(np.array([d["box"] for d in r]).reshape(-1, 4), np.array([d["class"] for d in r], np.int64),
                               np.array([d["score"] for d in r])) for r in rows]

        count = len(pictures["reference"])
        section["map50_original"] = mean_average_precision(as_detections(pictures["reference"]), boxes[:count], classes[:count], num_classes=num_classes)
        section["map50_artifact"] = mean_average_precision(as_detections(pictures["artifact"]), boxes[:count], classes[:count], num_classes=num_classes)
        section["ground_truth"] = [[{"box": [float(v) for v in b], "class": int(c)} for b, c in zip(bs, cs) if c > 0]
                                   for bs, cs in zip(boxes[:count], classes[:count])]
    section["labels"] = list(model.labels) if model.labels else None
    from edgezoo.reports.detections import picture_images

    section["pictures"] = picture_images(next(iter(data.heldout.values())), model.preprocessing, pictures["images"])
    return {"detections": section}


def ground_truth(model):
    """(boxes [N, M, 4], classes [N, M]) of the held-out inputs when the model's own data has them."""
    if model.load_data is None:
        return None
    data = model.load_data()
    return getattr(data, "heldout_boxes", None)
