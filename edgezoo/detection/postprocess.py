"""A numpy twin of TFLite_Detection_PostProcess (the fast, class-agnostic path: use_regular_nms = false), for the
reference of LiteRT and TFLM artifacts: TensorFlow cannot run the op, so the original's pre-NMS heads go through this.

It follows tensorflow/lite/kernels/detection_postprocess.cc: boxes decoded against centre-size anchors with the
y/x/h/w scales; per anchor the best class' score (class 0 included: the op takes every score column as a class);
anchors at or above the score threshold, highest first, greedily kept unless their IoU with a kept one exceeds the
IoU threshold; at most max_detections.
"""

from __future__ import annotations

import numpy as np

from edgezoo.detection.metrics import BOXES, CLASSES, COUNT, SCORES, iou_matrix


def centre_size(anchors: np.ndarray) -> np.ndarray:
    """(ymin, xmin, ymax, xmax) anchors to (ycentre, xcentre, h, w)."""
    return np.stack([(anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2,
                     anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]], axis=-1)


def decode(raw_boxes: np.ndarray, anchors: np.ndarray, config: dict) -> np.ndarray:
    """[A, 4] regressions (dy, dx, dh, dw) against centre-size anchors -> (ymin, xmin, ymax, xmax)."""
    ya, xa, ha, wa = anchors.T
    y = raw_boxes[:, 0] / config["y_scale"] * ha + ya
    x = raw_boxes[:, 1] / config["x_scale"] * wa + xa
    h = np.exp(raw_boxes[:, 2] / config["h_scale"]) * ha
    w = np.exp(raw_boxes[:, 3] / config["w_scale"]) * wa
    return np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=-1)


def nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float, limit: int) -> list[int]:
    candidates = np.where(scores >= score_threshold)[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept: list[int] = []
    for index in order:
        if len(kept) >= limit:
            break
        if kept and np.max(iou_matrix(boxes[index : index + 1], boxes[kept])) > iou_threshold:
            continue
        kept.append(int(index))
    return kept


def tflite_postprocess(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, config: dict) -> dict[str, np.ndarray]:
    """Heads of a batch ([N, A, 4] regressions, [N, A, C] logits), anchors [A, 4] (ymin, xmin, ymax, xmax in the op's
    coordinates) -> the op's four outputs, slots past num_detections zero (the op leaves them uninitialised)."""
    if config.get("max_classes_per_detection", 1) != 1 or config.get("use_regular_nms"):
        raise ValueError("the numpy twin implements TFLite_Detection_PostProcess' fast path with one class per detection only")
    limit = int(config["max_detections"])
    count = len(raw_boxes)
    out = {BOXES: np.zeros((count, limit, 4), np.float32), CLASSES: np.zeros((count, limit), np.float32),
           SCORES: np.zeros((count, limit), np.float32), COUNT: np.zeros((count,), np.float32)}
    centres = centre_size(anchors.astype(np.float64))
    for i in range(count):
        boxes = decode(raw_boxes[i].astype(np.float64), centres, config)
        scores = 1.0 / (1.0 + np.exp(-raw_scores[i].astype(np.float64)))  # the Garden's graph applies the sigmoid before the op
        best, best_class = scores.max(axis=1), scores.argmax(axis=1)
        kept = nms(boxes, best, config["nms_score_threshold"], config["nms_iou_threshold"], limit)
        n = len(kept)
        out[BOXES][i, :n], out[CLASSES][i, :n], out[SCORES][i, :n], out[COUNT][i] = boxes[kept], best_class[kept], best[kept], n
    return out
