"""Post-processing as ordinary TensorFlow ops that ONNX and TF.js take as their own NMS: the `serving_default` signature.

The heads are decoded against the anchors with plain arithmetic (the Garden's box coder: centre-size offsets, dh and
dw clipped at log(1000/16), boxes clipped to the image), scored with a sigmoid (class 0, the implicit background,
dropped), and reduced by TensorFlow's `NonMaxSuppressionV4` op with `pad_to_max_output_size`:
- tf2onnx maps NonMaxSuppressionV2..V5 to ONNX `NonMaxSuppression` (plus Slice/Squeeze, and a Pad for V4's padding),
  the tensorflowjs converter keeps `NonMaxSuppressionV4`, which TF.js runs as an async kernel (executeAsync).
  No While/Loop: the Garden's `nms_version='v2'` is a While over tiles whose masks tf2onnx constant-folds into the file.
  The op is called through tf.raw_ops: TensorFlow 2.19's `tf.image.non_max_suppression_padded` is not that op but a
  Python While over 512-box tiles (`non_max_suppression_padded_v2`), whatever its arguments.
- Class-aware with one NMS op (the coordinate-offset trick): every (anchor, class) pair is a candidate whose box is
  moved by 2 x class id (boxes lie in [0, 1]), so boxes of different classes never overlap and one greedy NMS equals
  NMS per class merged by score (what the Garden's v2 does).
- A TopK keeps the `pre_nms_top_k` best candidates first: it bounds the NMS' input on large detectors (COCO's 90
  classes x 19k anchors) without storing per-candidate constants in the file.
- Batch 1 only: the NMS ops take one image's boxes. Edge detectors run one frame at a time; every detector signature
  edgezoo exports takes [1, H, W, 3].

Outputs, as the Garden's: `detection_boxes` [1, K, 4] normalised (ymin, xmin, ymax, xmax), `detection_classes` [1, K]
(the Garden's ids, 1.. for objects), `detection_scores` [1, K], `num_detections` [1]; slots past the count are zero.
"""

from __future__ import annotations

import math

import numpy as np

from edgezoo import _tf

BOX_CLIP = math.log(1000.0 / 16.0)  # the Garden's BBOX_XFORM_CLIP: exp() of a larger dh or dw is an outlier, not a box
CLASS_OFFSET = 2.0  # boxes are clipped to [0, 1]: an offset of 2 per class keeps classes apart
PRE_NMS_TOP_K = 1000


def decode(raw_boxes, anchors: np.ndarray):
    """[A, 4] regressions (dy, dx, dh, dw) against [A, 4] anchors (ymin, xmin, ymax, xmax, normalised) -> boxes clipped to [0, 1]."""
    tf = _tf.tf()
    anchors = np.asarray(anchors, np.float32)
    size = tf.constant(anchors[:, 2:] - anchors[:, :2])  # (h, w)
    centre = tf.constant((anchors[:, 2:] + anchors[:, :2]) / 2)  # (yc, xc)
    offsets, scales = raw_boxes[:, :2], tf.minimum(raw_boxes[:, 2:], BOX_CLIP)
    centres = offsets * size + centre
    sizes = tf.exp(scales) * size
    low = centres - sizes / 2
    return tf.clip_by_value(tf.concat([low, low + sizes], axis=-1), 0.0, 1.0)


def detect(raw_boxes, raw_scores, anchors: np.ndarray, *, max_detections: int, score_threshold: float, iou_threshold: float,
           pre_nms_top_k: int = PRE_NMS_TOP_K) -> dict:
    """Heads of one image, [1, A, 4] regressions and [1, A, C] logits (class 0 the background), anchors [A, 4]
    normalised -> the four detection outputs (module docstring)."""
    tf = _tf.tf()
    classes = int(raw_scores.shape[-1]) - 1
    boxes = decode(raw_boxes[0], anchors)  # [A, 4]
    scores = tf.reshape(tf.sigmoid(raw_scores[0, :, 1:]), [-1])  # [A * classes], candidate = anchor * classes + class
    count = min(pre_nms_top_k, int(scores.shape[0]))
    top_scores, candidates = tf.math.top_k(scores, k=count, sorted=True)
    anchor, class_id = candidates // classes, candidates % classes
    top_boxes = tf.gather(boxes, anchor)
    shifted = top_boxes + CLASS_OFFSET * tf.cast(class_id, tf.float32)[:, None]
    selected, valid = tf.raw_ops.NonMaxSuppressionV4(boxes=shifted, scores=top_scores, max_output_size=max_detections,
                                                     iou_threshold=iou_threshold, score_threshold=score_threshold,
                                                     pad_to_max_output_size=True)
    keep = tf.cast(tf.range(max_detections) < valid, tf.float32)  # padded slots point at candidate 0: zero them
    return {
        "detection_boxes": (tf.gather(top_boxes, selected) * keep[:, None])[None],
        "detection_classes": (tf.cast(tf.gather(class_id, selected) + 1, tf.float32) * keep)[None],
        "detection_scores": (tf.gather(top_scores, selected) * keep)[None],
        "num_detections": tf.cast(tf.reshape(valid, [1]), tf.float32),
    }
