"""Detections as lists of boxes: masking by count, one coordinate system, IoU, matching by class, mAP@0.5.

A detector's outputs (`detection_boxes` [N, K, 4], `detection_classes` [N, K], `detection_scores` [N, K],
`num_detections` [N]) become, per image, a `Detections` of the valid slots only: slots past num_detections are
uninitialised in the TFLite op's output (1e38 and NaN seen), so nothing past the count is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOXES, CLASSES, SCORES, COUNT = "detection_boxes", "detection_classes", "detection_scores", "num_detections"


@dataclass(frozen=True)
class Detections:
    """One image's detections: boxes normalised to [0, 1] (ymin, xmin, ymax, xmax), class ids, scores."""

    boxes: np.ndarray  # [n, 4]
    classes: np.ndarray  # [n] int
    scores: np.ndarray  # [n]

    def __len__(self) -> int:
        return len(self.scores)

    def where(self, keep: np.ndarray) -> "Detections":
        return Detections(self.boxes[keep], self.classes[keep], self.scores[keep])

    def to_json(self) -> list[dict]:
        return [{"box": [round(float(v), 4) for v in b], "class": int(c), "score": round(float(s), 4)}
                for b, c, s in zip(self.boxes, self.classes, self.scores)]


def split(outputs: dict[str, np.ndarray], image_size: tuple[int, int] | None = None, background: int | None = None) -> list[Detections]:
    """Per image, the first num_detections slots; boxes in pixels (any coordinate above 1.5) divided by `image_size`;
    detections of the `background` class (the TFLite op counts class 0 as a real one) dropped."""
    missing = [name for name in (BOXES, CLASSES, SCORES, COUNT) if name not in outputs]
    if missing:
        raise KeyError(f"detector outputs lack {', '.join(missing)} (have {', '.join(sorted(outputs))})")
    found = []
    for i, count in enumerate(np.asarray(outputs[COUNT]).reshape(len(outputs[COUNT]), -1)[:, 0]):
        n = int(np.clip(np.rint(np.nan_to_num(count)), 0, outputs[SCORES].shape[1]))  # rounded: int8 outputs dequantise to 6.98
        boxes = np.asarray(outputs[BOXES][i, :n], np.float64).reshape(n, 4)
        if image_size is not None and n and np.nanmax(np.abs(boxes)) > 1.5:
            height, width = image_size
            boxes = boxes / np.array([height, width, height, width])
        detections = Detections(np.clip(boxes, 0.0, 1.0), np.rint(outputs[CLASSES][i, :n]).astype(np.int64),
                                np.asarray(outputs[SCORES][i, :n], np.float64))
        if background is not None:
            detections = detections.where(detections.classes != background)
        found.append(detections)
    return found


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` [n, 4] with every box of `b` [m, 4]."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(reference: Detections, candidate: Detections, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy matching by class: reference detections in order of score, each to the unmatched candidate of the same
    class with the highest IoU at or above the threshold. Returns (reference index, candidate index, IoU)."""
    ious = iou_matrix(reference.boxes, candidate.boxes)
    taken = np.zeros(len(candidate), bool)
    pairs = []
    for r in np.argsort(-reference.scores, kind="stable"):
        options = np.where((candidate.classes == reference.classes[r]) & ~taken & (ious[r] >= iou_threshold))[0]
        if len(options):
            c = options[np.argmax(ious[r, options])]
            taken[c] = True
            pairs.append((int(r), int(c), float(ious[r, c])))
    return pairs


def mean_average_precision(outputs: dict[str, np.ndarray] | list[Detections], gt_boxes: np.ndarray, gt_classes: np.ndarray,
                           *, num_classes: int, iou_threshold: float = 0.5, image_size=None) -> float:
    """mAP@0.5 (VOC-style all-point interpolation) against ground truth: `gt_boxes` [N, M, 4] normalised, `gt_classes`
    [N, M] with 0 marking an empty slot. Classes without ground truth are left out of the mean."""
    found = outputs if isinstance(outputs, list) else split(outputs, image_size, background=0)
    precisions = []
    for cls in range(1, num_classes):
        scores, hits, total = [], [], 0
        for detections, boxes, classes in zip(found, gt_boxes, gt_classes):
            truth = boxes[classes == cls]
            total += len(truth)
            mine = detections.where(detections.classes == cls)
            order = np.argsort(-mine.scores, kind="stable")
            ious = iou_matrix(mine.boxes[order], truth)
            used = np.zeros(len(truth), bool)
            for k in range(len(order)):
                j = int(np.argmax(ious[k])) if len(truth) else -1
                hit = j >= 0 and ious[k, j] >= iou_threshold and not used[j]
                if hit:
                    used[j] = True
                scores.append(mine.scores[order[k]])
                hits.append(hit)
        if total == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="stable")
        tp = np.cumsum(np.asarray(hits, float)[order]) if scores else np.zeros(0)
        recall = tp / total
        precision = tp / np.arange(1, len(tp) + 1)
        precisions.append(_area(recall, precision))
    return float(np.mean(precisions)) if precisions else 0.0


def _area(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))
