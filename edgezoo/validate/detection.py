"""Detection parity: the artifact's boxes matched to the original's, not its tensors compared slot by slot.

NMS-selected outputs differ in order, count and padding between runtimes, so per-tensor metrics on them judge
nothing. Per image: detections masked by num_detections (slots past it are uninitialised on LiteRT), boxes normalised
to [0, 1] (ymin, xmin, ymax, xmax), background detections dropped (the TFLite op counts class 0 as a class), then
the artifact's detections matched to the original's by class at IoU >= 0.5 (edgezoo/detection/metrics.py).

Reported as one `detections` entry of the ParityReport: recall (original's detections found), precision (artifact's
detections the original has), mean IoU of matched pairs, mean and max score difference of matched pairs, and the
unmatched detections of each side. A detection scored within `detection_score_margin` of the score threshold that
finds no partner is counted neither as a miss nor as an extra: a tiny score change legitimately moves it across.
The pre-NMS heads (`raw_boxes`, `raw_scores`), when the original exports them, are compared beside it with the ordinary
tensor metrics and the profile's tensor limits for the quantisation (its detection limits left out).
"""

from __future__ import annotations

import numpy as np

from edgezoo.detection.metrics import Detections, match, split
from edgezoo.targets.profile import Tolerance
from edgezoo.validate.parity import OutputParity, ParityReport

DETECTIONS = "detections"
DEFAULT_MARGIN = 0.05


def compare_detections(reference: list[Detections], candidate: list[Detections], *, score_threshold: float,
                       margin: float) -> tuple[dict[str, float], list[dict]]:
    """Metrics over all images, and per image the matched pairs and the unmatched detections (for the pictures)."""
    near = score_threshold + margin
    pairs_total = ref_counted = cand_counted = 0
    ious, diffs, images = [], [], []
    unmatched_ref = unmatched_cand = excused = 0
    for ref, cand in zip(reference, candidate):
        pairs = match(ref, cand)
        matched_ref = {r for r, _, _ in pairs}
        matched_cand = {c for _, c, _ in pairs}
        lost = [r for r in range(len(ref)) if r not in matched_ref]
        extra = [c for c in range(len(cand)) if c not in matched_cand]
        lost_counted = [r for r in lost if ref.scores[r] >= near]
        extra_counted = [c for c in extra if cand.scores[c] >= near]
        excused += len(lost) - len(lost_counted) + len(extra) - len(extra_counted)
        pairs_total += len(pairs)
        ref_counted += len(pairs) + len(lost_counted)
        cand_counted += len(pairs) + len(extra_counted)
        unmatched_ref += len(lost_counted)
        unmatched_cand += len(extra_counted)
        ious += [iou for _, _, iou in pairs]
        diffs += [abs(float(ref.scores[r]) - float(cand.scores[c])) for r, c, _ in pairs]
        images.append({"matched": [[r, c, round(iou, 4)] for r, c, iou in pairs], "missed": lost_counted, "extra": extra_counted,
                       "near_threshold": [r for r in lost if r not in lost_counted]})
    values = {
        "detection_recall": pairs_total / ref_counted if ref_counted else 1.0,
        "detection_precision": pairs_total / cand_counted if cand_counted else 1.0,
        "mean_matched_iou": float(np.mean(ious)) if ious else (1.0 if not ref_counted else 0.0),
        "mean_score_difference": float(np.mean(diffs)) if diffs else 0.0,
        "max_score_difference": float(np.max(diffs)) if diffs else 0.0,
        "reference_detections": float(sum(len(r) for r in reference)),
        "artifact_detections": float(sum(len(c) for c in candidate)),
        "matched_detections": float(pairs_total),
        "unmatched_reference": float(unmatched_ref),
        "unmatched_artifact": float(unmatched_cand),
        "near_threshold_unmatched": float(excused),
    }
    return values, images


def detection_report(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *, runtime: str, tolerance: Tolerance,
                     score_threshold: float, image_size: tuple[int, int], background: int | None = 0,
                     heads: tuple[dict, dict] | None = None) -> tuple[ParityReport, dict]:
    """The ParityReport of a detector artifact, and the per-image detections of both sides (for report.html's pictures).

    `heads`: (reference, artifact) pre-NMS outputs, compared by the reference's names with the ordinary tensor metrics
    when given (an output the artifact lacks is a violation)."""
    from edgezoo.validate.parity import compare_outputs

    margin = tolerance.detection_score_margin if tolerance.detection_score_margin is not None else DEFAULT_MARGIN
    count = len(next(iter(reference.values())))
    try:
        ref = split(reference, image_size, background)
        cand = split(candidate, image_size, background)
    except KeyError as exc:
        entry = OutputParity(DETECTIONS, {}, (str(exc).strip("'\""),), kind="detections")
        return ParityReport(runtime, count, (entry,), tolerance), {}
    values, images = compare_detections(ref, cand, score_threshold=score_threshold, margin=margin)
    violations = tolerance.violations(values)
    if not values["reference_detections"]:  # a random-weight detector finds nothing, and nothing matches nothing
        violations.insert(0, f"the original detects nothing on the {count} held-out inputs: matching proves nothing "
                             "(give trained weights, e.g. ?checkpoint=PATH, or inputs with objects in them)")
    entry = OutputParity(DETECTIONS, values, tuple(violations), kind="detections")
    outputs = [entry]
    if heads is not None:
        outputs += list(compare_outputs(heads[0], heads[1], classifier=False, tolerance=tolerance.without_detection_limits(),
                                        runtime=runtime).outputs)
    pictures = {"reference": [d.to_json() for d in ref], "artifact": [d.to_json() for d in cand], "images": images,
                "score_threshold": score_threshold, "margin": margin}
    return ParityReport(runtime, count, tuple(outputs), tolerance), pictures
