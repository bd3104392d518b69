"""Train the bundled `shapes-detector`: the Model Garden's RetinaNet (MobileNetV2 x0.25, FPN, levels 3-5) at 128x128 on
synthetic images of coloured circles, squares and triangles of varied sizes (small ones included), several per image and
overlapping, on cluttered, noisy backgrounds with distractors (lines, blobs and outlines in the objects' colours).

    .venv/bin/python scripts/train_shapes_detector.py [--steps 1800] [--out edgezoo/zoo/bundled/shapes_detector]

Seeded (numpy and TensorFlow): the same command gives the same data; TensorFlow's CPU kernels are not bit-exact from run
to run, so the weights can differ in the last digits. Writes saved_model/ (three signatures, see
edgezoo/detection/garden_model.py), detector.json, model.json (labels, preprocessing, measured float mAP@0.5 on the
held-out images) and data.npz (calibration and held-out images with their ground-truth boxes). About 18 minutes on 2
shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from edgezoo.detection.garden_model import DetectorSpec, anchors, build, export  # noqa: E402

SIZE = 128
LABELS = ("background", "circle", "square", "triangle")  # the Garden's class ids: 0 is background
SPEC = DetectorSpec(backbone="mobilenetv2", filter_size_scale=0.25, input_size=SIZE, num_classes=len(LABELS),
                    min_level=3, max_level=5, num_scales=2, aspect_ratios=(1.0,), anchor_size=1.5,
                    fpn_filters=32, head_convs=2, head_filters=32, max_detections=10, score_threshold=0.3, iou_threshold=0.5)
MAX_OBJECTS = 6
MIN_SIZE, MAX_SIZE = 12.0, 44.0  # pixels: the smallest are one and a half level-3 cells (stride 8)
MAX_OVERLAP = 0.3  # IoU allowed between two objects: the later one hides part of the earlier
CALIBRATION, HELDOUT = 12, 24  # images in data.npz


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """Objects and distractors share one palette: colour alone never tells them apart."""
    return tuple(int(c) for c in rng.choice([rng.uniform(170, 255), rng.uniform(0, 70), rng.uniform(90, 160)], 3))


def _blob(rng: np.random.Generator, x: float, y: float, radius: float) -> list[tuple[float, float]]:
    """An irregular polygon around (x, y): a distractor with a filled, shape-like look."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
    radii = radius * rng.uniform(0.5, 1.3, len(angles))
    return [(x + r * np.cos(a), y + r * np.sin(a)) for a, r in zip(angles, radii)]


def background(rng: np.random.Generator) -> Image.Image:
    """A colour gradient with clutter: lines, blobs, outlines and dots in the objects' colours."""
    corners = rng.uniform(40, 215, size=(2, 2, 3))
    t = np.linspace(0, 1, SIZE)[:, None, None]
    s = np.linspace(0, 1, SIZE)[None, :, None]
    base = (corners[0, 0] * (1 - t) * (1 - s) + corners[0, 1] * (1 - t) * s + corners[1, 0] * t * (1 - s) + corners[1, 1] * t * s)
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(6, 14)):
        colour = _colour(rng)
        kind = rng.integers(4)
        x0, y0 = rng.uniform(0, SIZE, 2)
        if kind == 0:
            draw.line([(x0, y0), tuple(rng.uniform(0, SIZE, 2))], fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            draw.polygon(_blob(rng, x0, y0, rng.uniform(3, 12)), fill=colour)
        elif kind == 2:
            w, h = rng.uniform(8, 40, 2)
            draw.rectangle([x0, y0, x0 + w, y0 + h], outline=colour, width=int(rng.integers(1, 3)))
        else:
            r = rng.uniform(1, 3)
            draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
    return image


def sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (uint8, 128x128x3), its boxes normalised (ymin, xmin, ymax, xmax) and classes (1..3)."""
    image = background(rng)
    draw = ImageDraw.Draw(image)
    boxes, classes = [], []
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        for _attempt in range(20):
            size = MIN_SIZE + (MAX_SIZE - MIN_SIZE) * rng.uniform() ** 1.2  # more small objects than large
            x0, y0 = rng.uniform(1, SIZE - size - 1, 2)
            box = np.array([y0, x0, y0 + size, x0 + size])
            if all(_iou(box, other) <= MAX_OVERLAP for other in boxes):
                break
        else:
            continue
        label = int(rng.integers(1, 4))
        y0, x0, y1, x1 = box
        if label == 1:
            draw.ellipse([x0, y0, x1, y1], fill=_colour(rng))
        elif label == 2:
            draw.rectangle([x0, y0, x1, y1], fill=_colour(rng))
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=_colour(rng))
        boxes.append(box)
        classes.append(label)
    pixels = np.asarray(image, np.float32) + rng.normal(0, 12, (SIZE, SIZE, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.array(boxes, np.float32).reshape(-1, 4) / SIZE, np.array(classes, np.int32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def dataset(rng: np.random.Generator, count: int):
    images, boxes, classes = [], np.zeros((count, MAX_OBJECTS, 4), np.float32), np.zeros((count, MAX_OBJECTS), np.int32)
    for i in range(count):
        image, b, c = sample(rng)
        images.append(image)
        boxes[i, : len(b)], classes[i, : len(c)] = b, c
    return np.stack(images), boxes, classes  # class 0 marks an empty slot


def preprocess(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def targets(images_boxes: np.ndarray, images_classes: np.ndarray):
    """The Garden's anchor labeller: per anchor, the class (-1 background, -2 ignored) and box regression targets."""
    import tensorflow as tf
    from official.vision.ops import anchor

    labeler = anchor.AnchorLabeler(match_threshold=0.5, unmatched_threshold=0.4)
    level_anchors = {k: tf.constant(v) for k, v in anchors(SPEC).items()}
    cls_all, box_all, weight_all = [], [], []
    for boxes, classes in zip(images_boxes, images_classes):
        keep = classes > 0
        cls_t, box_t, _, cls_w, box_w = labeler.label_anchors(level_anchors, tf.constant(boxes[keep] * SIZE),
                                                             tf.constant(classes[keep][:, None]))
        cls_all.append(np.concatenate([cls_t[k].numpy().reshape(-1) for k in sorted(cls_t, key=int)]))
        box_all.append(np.concatenate([box_t[k].numpy().reshape(-1, 4) for k in sorted(box_t, key=int)]))
        weight_all.append(np.stack([cls_w.numpy(), box_w.numpy()], -1))
    return np.stack(cls_all).astype(np.int32), np.stack(box_all).astype(np.float32), np.stack(weight_all).astype(np.float32)


def train(steps: int, seed: int, log_every: int = 100):
    import tensorflow as tf
    import tf_keras

    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    train_images, train_boxes, train_classes = dataset(rng, 4000)
    print(f"labelling the anchors of {len(train_images)} training images", flush=True)
    cls_targets, box_targets, weights = targets(train_boxes, train_classes)
    model = build(SPEC)
    schedule = tf_keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.02)
    optimizer = tf_keras.optimizers.Adam(schedule)
    num_classes = SPEC.num_classes

    def flat(per_level, width):
        return tf.concat([tf.reshape(per_level[k], [tf.shape(per_level[k])[0], -1, width]) for k in sorted(per_level, key=int)], 1)

    @tf.function
    def step(images, cls_t, box_t, w):
        with tf.GradientTape() as tape:
            out = model(images, training=True)
            logits, regressions = flat(out["cls_outputs"], num_classes), flat(out["box_outputs"], 4)
            positives = tf.maximum(tf.reduce_sum(w[..., 1]), 1.0)
            onehot = tf.one_hot(cls_t, num_classes)  # -1 (background) and -2 (ignored) give all zeros
            p = tf.sigmoid(logits)
            ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=logits)
            p_t = onehot * p + (1 - onehot) * (1 - p)
            alpha = onehot * 0.25 + (1 - onehot) * 0.75
            focal = tf.reduce_sum(alpha * (1 - p_t) ** 1.5 * ce * w[..., :1]) / positives
            huber = tf_keras.losses.Huber(0.1, reduction="none")(box_t[..., None], regressions[..., None])
            box_loss = tf.reduce_sum(huber * w[..., 1:2]) / (positives * 4)
            loss = focal + 50.0 * box_loss
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, focal, box_loss

    batch = 24
    order = np.random.default_rng(seed + 1)
    started = time.time()
    for i in range(steps):
        idx = order.integers(0, len(train_images), batch)
        images, cls_t, box_t, w = train_images[idx], cls_targets[idx], box_targets[idx], weights[idx]
        loss, focal, box_loss = step(tf.constant(preprocess(images)), tf.constant(cls_t), tf.constant(box_t), tf.constant(w))
        if i % log_every == 0 or i == steps - 1:
            print(f"step {i:5d}  loss {float(loss):.4f}  focal {float(focal):.4f}  box {float(box_loss):.5f}  "
                  f"{time.time() - started:.0f} s", flush=True)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("edgezoo/zoo/bundled/shapes_detector"))
    args = parser.parse_args()
    model = train(args.steps, args.seed)
    rng = np.random.default_rng(args.seed + 100)  # data never seen in training
    calibration = dataset(rng, CALIBRATION)
    heldout = dataset(rng, HELDOUT)
    staging = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    export(model, SPEC, staging)
    np.savez_compressed(staging / "data.npz", calibration_images=calibration[0], heldout_images=heldout[0],
                        heldout_boxes=heldout[1], heldout_classes=heldout[2])
    from edgezoo.detection.metrics import mean_average_precision
    from edgezoo.detection.reference import run_signature

    found = run_signature(staging / "saved_model", "serving_default", {"images": preprocess(heldout[0])})
    mAP = mean_average_precision(found, heldout[1], heldout[2], num_classes=SPEC.num_classes)
    meta = {
        "name": "shapes-detector", "version": "1", "task": "detection",
        "parameters": int(model.count_params()), "input_shape": [SIZE, SIZE, 3],
        "description": "RetinaNet (Model Garden, MobileNetV2 x0.25, FPN) detecting circles, squares and triangles of varied sizes, "
                       "overlapping, at 128x128, trained by scripts/train_shapes_detector.py on synthetic cluttered images "
                       "with distractors.",
        "author": "edgezoo (scripts/train_shapes_detector.py)", "labels": list(LABELS),
        "preprocessing": {"scale": 1 / 127.5, "offset": -1.0, "channel_order": "RGB", "description": "pixels 0..255 to -1..1",
                          "pixel_max": 255},
        "data": "data.npz", "data_license": "synthetic (generated by the training script)", "weights_license": "same as edgezoo",
        "heldout_map50": round(mAP, 4), "training_steps": args.steps, "seed": args.seed,
    }
    (staging / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    staging.rename(args.out)
    print(f"float mAP@0.5 on {len(heldout[0])} held-out images: {mAP:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
