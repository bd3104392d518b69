"""RetinaNet detectors from the TensorFlow Model Garden's experiment configs, and their export for edgezoo.

One SavedModel holds three signatures over the same variables (one copy of the weights):
- `serving_default`: NMS as ordinary ops (edgezoo/detection/portable_nms.py: the box decoding as arithmetic, one
  NonMaxSuppressionV4), which TensorFlow, tf2onnx (ONNX NonMaxSuppression) and tensorflowjs (TF.js' NMS kernel) all
  run. It is the canonical form, the reference, and what ONNX and TF.js get.
- `tflite_postprocess`: the same heads into the `TFLite_Detection_PostProcess` custom op (`nms_version='tflite'`) for
  LiteRT and TFLM. TensorFlow cannot run that op (it returns zeros), so its reference is the `heads` signature through
  edgezoo/detection/postprocess.py.
- `heads`: the pre-NMS heads, `raw_boxes` [1, anchors, 4] (box regressions) and `raw_scores` [1, anchors, classes]
  (logits), for the numpy reference and the ordinary tensor metrics.

Every signature takes `images` [1, H, W, 3] float32 (already preprocessed). The two detecting ones return boxes
normalised to [0, 1] as (ymin, xmin, ymax, xmax), classes as the Garden's ids (0 is background), scores and
num_detections, and the heads' `raw_boxes` and `raw_scores` too: every converted artifact carries them under those
names, so the pre-NMS heads are compared tensor by tensor on every runtime.
`detector.json` beside the SavedModel holds the anchors and post-processing parameters the numpy reference needs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgezoo import _tf

TFLITE_SIGNATURE = "tflite_postprocess"
HEADS_SIGNATURE = "heads"
DETECTOR_FILE = "detector.json"
DETECTION_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
HEAD_OUTPUTS = ("raw_boxes", "raw_scores")
BACKBONES = {"mobilenetv2": "MobileNetV2", "mobilenetv3small": "MobileNetV3Small", "mobilenetv3large": "MobileNetV3Large"}


@dataclass(frozen=True)
class DetectorSpec:
    """What the Garden's RetinaNet config is set to; the rest comes from the experiment config."""

    experiment: str = "retinanet_mobile_coco"
    backbone: str = "mobilenetv2"
    filter_size_scale: float = 1.0
    input_size: int = 320
    num_classes: int = 91  # the Garden's count, background (class 0) included
    min_level: int = 3
    max_level: int = 5  # levels 6 and 7 add TILE-free but tiny maps; 3..5 keeps the anchors few
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_size: float = 3.0
    fpn_filters: int = 64
    head_convs: int = 4
    head_filters: int = 48
    activation: str = "relu6"  # swish lowers to LOGISTIC+MUL; relu6 maps to TFLM's kernels directly
    max_detections: int = 20
    score_threshold: float = 0.3
    iou_threshold: float = 0.5

    def to_json(self) -> dict:
        return {**asdict(self), "aspect_ratios": list(self.aspect_ratios)}

    @classmethod
    def from_json(cls, data: dict) -> "DetectorSpec":
        return cls(**{**data, "aspect_ratios": tuple(data["aspect_ratios"])})


def model_config(spec: DetectorSpec):
    """The Garden experiment's model config with the spec's settings applied."""
    _tf.tf()
    from official.core import exp_factory
    from official.vision.configs import backbones, decoders, retinanet  # noqa: F401  (retinanet registers the experiments)

    config = exp_factory.get_exp_config(spec.experiment).task.model
    config.num_classes = spec.num_classes
    config.input_size = [spec.input_size, spec.input_size, 3]
    config.min_level, config.max_level = spec.min_level, spec.max_level
    config.anchor.num_scales = spec.num_scales
    config.anchor.aspect_ratios = list(spec.aspect_ratios)
    config.anchor.anchor_size = spec.anchor_size
    config.backbone = backbones.Backbone(type="mobilenet", mobilenet=backbones.MobileNet(
        model_id=BACKBONES[spec.backbone], filter_size_scale=spec.filter_size_scale))
    # use_keras_layer: the FPN's upsampling as a Keras layer instead of tile+reshape (TFLM has no TILE).
    config.decoder = decoders.Decoder(type="fpn", fpn=decoders.FPN(num_filters=spec.fpn_filters, use_separable_conv=True,
                                                                    use_keras_layer=True))
    config.head.num_convs, config.head.num_filters = spec.head_convs, spec.head_filters
    config.norm_activation.use_sync_bn = False
    config.norm_activation.activation = spec.activation
    return config


def build(spec: DetectorSpec):
    """A Garden RetinaNetModel (tf-keras) of the spec, with random weights."""
    tf = _tf.tf()
    import tf_keras
    from official.vision.modeling import factory

    with _tf.quiet_native_output():
        model = factory.build_retinanet(tf_keras.layers.InputSpec(shape=[None, spec.input_size, spec.input_size, 3]),
                                        model_config(spec))
        model(tf.zeros([1, spec.input_size, spec.input_size, 3]), training=False)
    return model


def anchors(spec: DetectorSpec) -> dict[str, np.ndarray]:
    """The Garden's anchors per level, [H, W, 4 * per_location] in pixels (ymin, xmin, ymax, xmax)."""
    _tf.tf()
    from official.vision.ops import anchor

    boxes = anchor.Anchor(spec.min_level, spec.max_level, spec.num_scales, list(spec.aspect_ratios), spec.anchor_size,
                          (spec.input_size, spec.input_size)).multilevel_boxes
    return {level: np.asarray(value) for level, value in boxes.items()}


def flat_anchors(spec: DetectorSpec) -> np.ndarray:
    """[anchors, 4] in the heads' order (level, then y, x, then anchor), pixels."""
    return np.concatenate([a.reshape(-1, 4) for _, a in sorted(anchors(spec).items(), key=lambda kv: int(kv[0]))])


def _tflite_generator(spec: DetectorSpec):
    from official.vision.modeling.layers import detection_generator

    return detection_generator.MultilevelDetectionGenerator(
        apply_nms=True, max_num_detections=spec.max_detections, nms_version="tflite",
        tflite_post_processing_config=tflite_config(spec))


def tflite_config(spec: DetectorSpec) -> dict:
    """TFLite_Detection_PostProcess' attributes (also what postprocess.py's numpy twin reads)."""
    return {"max_detections": spec.max_detections, "max_classes_per_detection": 1, "use_regular_nms": False,
            "nms_score_threshold": spec.score_threshold, "nms_iou_threshold": spec.iou_threshold,
            "normalize_anchor_coordinates": True, "input_image_size": [spec.input_size, spec.input_size],
            "detections_per_class": 5, "y_scale": 1.0, "x_scale": 1.0, "h_scale": 1.0, "w_scale": 1.0}


def export(model, spec: DetectorSpec, out_dir: Path) -> Path:
    """Write `out_dir/saved_model` (three signatures, see the module's docstring) and `out_dir/detector.json`."""
    tf = _tf.tf()
    from edgezoo.detection import portable_nms

    size = spec.input_size
    level_anchors = {level: tf.constant(value[None], tf.float32) for level, value in anchors(spec).items()}
    normalised_anchors = flat_anchors(spec) / size
    tflite = _tflite_generator(spec)
    spec_input = tf.TensorSpec([1, size, size, 3], tf.float32, name="images")

    def flat(per_level: dict, width: int):
        return tf.concat([tf.reshape(per_level[k], [1, -1, width]) for k in sorted(per_level, key=int)], axis=1)

    @tf.function(input_signature=[spec_input])  # one function the three signatures call: the network's graph is stored once
    def network(images):
        features = model.decoder(model.backbone(images, training=False), training=False)
        raw_scores, raw_boxes, _ = model.head(features, training=False)
        return raw_scores, raw_boxes

    def heads(images):
        raw_scores, raw_boxes = network(images)
        return {"raw_boxes": flat(raw_boxes, 4), "raw_scores": flat(raw_scores, spec.num_classes)}

    def portable(images):
        found = heads(images)
        return {**found, **portable_nms.detect(found["raw_boxes"], found["raw_scores"], normalised_anchors,
                                               max_detections=spec.max_detections, score_threshold=spec.score_threshold,
                                               iou_threshold=spec.iou_threshold)}

    def tflite_op(images):
        raw_scores, raw_boxes = network(images)
        found = tflite(raw_boxes, raw_scores, level_anchors, None)
        return {"detection_boxes": found["detection_boxes"], "detection_classes": tf.cast(found["detection_classes"], tf.float32),
                "detection_scores": found["detection_scores"], "num_detections": tf.cast(found["num_detections"], tf.float32),
                "raw_boxes": flat(raw_boxes, 4), "raw_scores": flat(raw_scores, spec.num_classes)}

    module = tf.Module()
    # The variables the heads read, only: the Keras model's own traces would multiply the file, and the backbone's last
    # block (unused past max_level) would add weights nothing reads.
    used = {id(v) for v in network.get_concrete_function().variables}
    module.weights = [v for v in model.variables if id(v) in used]  # in the model's own order: restore_from_export relies on it
    signatures = {name: tf.function(function, input_signature=[spec_input]).get_concrete_function()
                  for name, function in (("serving_default", portable), (TFLITE_SIGNATURE, tflite_op), (HEADS_SIGNATURE, heads))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _tf.quiet_native_output():
        tf.saved_model.save(module, str(out_dir / "saved_model"), signatures=signatures)
    write_detector_json(out_dir / DETECTOR_FILE, spec)
    return out_dir / "saved_model"


def write_detector_json(path: Path, spec: DetectorSpec) -> None:
    path.write_text(json.dumps({"spec": spec.to_json(), "tflite_postprocess": tflite_config(spec)}, indent=2) + "\n")


@dataclass(frozen=True)
class DetectorInfo:
    """What detector.json says: how the heads decode, for the numpy reference."""

    spec: DetectorSpec
    signatures: tuple[str, ...] = field(default=("serving_default", TFLITE_SIGNATURE, HEADS_SIGNATURE))

    @classmethod
    def read(cls, path: Path) -> "DetectorInfo":
        return cls(DetectorSpec.from_json(json.loads(Path(path).read_text())["spec"]))


def restore_from_export(model, spec: DetectorSpec, saved_model_dir: Path) -> None:
    """Give a freshly built Garden model (`build(spec)`) the weights of an edgezoo export of the same spec: the export
    stores the variables its heads read in the model's own variable order, which a fresh build repeats (names carry
    session-dependent suffixes, so they are not matched)."""
    tf = _tf.tf()
    size = spec.input_size

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def heads(images):
        return model.head(model.decoder(model.backbone(images, training=False), training=False), training=False)

    used = {id(v) for v in heads.get_concrete_function().variables}
    targets = [v for v in model.variables if id(v) in used]
    with _tf.quiet_native_output():
        sources = list(tf.saved_model.load(str(saved_model_dir)).weights)
    if len(targets) != len(sources) or any(t.shape != s.shape for t, s in zip(targets, sources)):
        raise ValueError(f"the export at {saved_model_dir} holds {len(sources)} variables that do not fit this model's {len(targets)}")
    for target, source in zip(targets, sources):
        target.assign(source)
