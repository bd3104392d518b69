"""`garden:EXPERIMENT[?options]`: RetinaNet detectors built from the TensorFlow Model Garden's experiment configs.

    garden:retinanet_mobile_coco?backbone=mobilenetv2&input_size=320&classes=3
    garden:retinanet_mobile_coco?classes=90&checkpoint=/path/to/ckpt-1000          a Garden checkpoint (prefix or folder)
    garden:retinanet_mobile_coco?checkpoint=https://host/retinanet.tar.gz&sha256=...  fetched through the cache or mirror

The experiment config gives the anchors and the head; edgezoo sets the backbone (a MobileNet, `backbone=`), an FPN
over levels 3-5 and relu6 (ops every target has), the input size and the classes (`classes=N` object classes, the
Garden's background class 0 added). The model is exported once into the cache (`<cache>/garden/<digest>/`) with the
three signatures of edgezoo/detection/garden_model.py. Without a checkpoint the weights are random, and a
random-weight detector detects nothing: its parity check says so instead of passing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgezoo.errors import SourceNotFoundError, UsageError
from edgezoo.paths import user_path
from edgezoo.zoo import LoadOptions, register_source
from edgezoo.zoo.base import LoadedModel, Preprocessing, read_signature, sha256_of_path
from edgezoo.zoo.source_options import parse_options, parse_sha256, split_options

PREFIX = "garden:"
OPTIONS = {"backbone": str, "input_size": int, "classes": int, "checkpoint": str, "sha256": parse_sha256,
           "filter_size_scale": float, "score_threshold": float, "max_detections": int}
# The Garden's normalize_image: ImageNet mean and standard deviation on 0..255 pixels.
PREPROCESSING = Preprocessing(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), channel_order="RGB",
                              description="the Model Garden's normalize_image (ImageNet mean and std on 0..255 pixels)")


def _matches(source: str) -> bool:
    return source.startswith(PREFIX)


def spec_for(experiment: str, options: dict):
    """The DetectorSpec the source names: the experiment config's anchors and head, the options' overrides."""
    from edgezoo import _tf
    from edgezoo.detection.garden_model import BACKBONES, DetectorSpec

    _tf.tf()
    from official.core import exp_factory
    from official.vision.configs import retinanet  # noqa: F401  (registers the RetinaNet experiments)

    try:
        config = exp_factory.get_exp_config(experiment).task.model
    except (KeyError, ValueError, AssertionError, LookupError):
        raise SourceNotFoundError(f"'{experiment}' is no Model Garden experiment with a RetinaNet model; try "
                                  "garden:retinanet_mobile_coco.") from None
    if not hasattr(config, "anchor") or not hasattr(config, "head"):
        raise SourceNotFoundError(f"the Model Garden experiment '{experiment}' is not a RetinaNet (no anchors); try garden:retinanet_mobile_coco.")
    backbone = options.get("backbone", "mobilenetv2").lower()
    if backbone not in BACKBONES:
        raise UsageError(f"garden: backbone '{backbone}' is not offered; use one of {', '.join(BACKBONES)}.")
    classes = options.get("classes")
    if classes is not None and classes < 1:
        raise UsageError(f"garden: classes={classes}: give the number of object classes (1 or more).")
    size = options.get("input_size", config.input_size[0])
    if size < 32 or size % 32:
        raise UsageError(f"garden: input_size={size} must be a multiple of 32 (the FPN's coarsest level is 1/32 of it).")
    return DetectorSpec(experiment=experiment, backbone=backbone, filter_size_scale=options.get("filter_size_scale", 1.0),
                        input_size=size, num_classes=(classes + 1) if classes else config.num_classes,
                        num_scales=config.anchor.num_scales, aspect_ratios=tuple(config.anchor.aspect_ratios),
                        anchor_size=config.anchor.anchor_size, head_convs=config.head.num_convs, head_filters=config.head.num_filters,
                        max_detections=options.get("max_detections", 20), score_threshold=options.get("score_threshold", 0.3))


def _checkpoint(value: str, sha256: str | None, load_options: LoadOptions) -> tuple[str, dict]:
    """A checkpoint prefix to restore from, and what the report says about it (where from, how verified)."""
    if value.startswith(("http://", "https://")):
        from edgezoo.zoo import cache
        from edgezoo.zoo.download import DownloadSettings, Remote, fetch_archive

        settings = DownloadSettings.from_options(load_options)
        remote = Remote.for_url(value, sha256, "the source string")
        folder = fetch_archive(remote, cache.file_path(settings.cache, remote.relative_path + ".d"), settings, "Garden checkpoint")
        path = folder
    else:
        path = user_path(value)
    from edgezoo import _tf

    tf = _tf.tf()

    prefix = tf.train.latest_checkpoint(str(path)) if Path(path).is_dir() else str(path)
    if not prefix or not Path(prefix + ".index").exists():
        raise SourceNotFoundError(f"garden: no TensorFlow checkpoint at {value} (expected PREFIX.index and PREFIX.data-*, or a "
                                  "folder with a 'checkpoint' file). Give the checkpoint your Garden training wrote.")
    digest = hashlib.sha256(Path(prefix + ".index").read_bytes()).hexdigest()
    return prefix, {"checkpoint": value, "checkpoint_prefix": prefix, "checkpoint_index_sha256": digest}


@register_source("garden", _matches, describe="garden:EXPERIMENT?backbone=mobilenetv2&input_size=320&classes=N[&checkpoint=PATH] "
                                              "(Model Garden RetinaNet detectors)")
def load_garden(source: str, options: LoadOptions) -> LoadedModel:
    experiment, raw = split_options(source[len(PREFIX):], set(OPTIONS))
    if "?" in experiment:
        raise UsageError(f"{source}: unknown options '{experiment.partition('?')[2]}'; known: {', '.join(OPTIONS)}.")
    parsed = parse_options(raw, {k: (lambda v, f=f: f(v)) for k, f in OPTIONS.items()}, source)
    spec = spec_for(experiment, parsed)
    checkpoint, details = _checkpoint(parsed["checkpoint"], parsed.get("sha256"), options) if "checkpoint" in parsed else (None, {})
    folder = _export_dir(options, spec, details)
    if not (folder / "saved_model" / "saved_model.pb").exists():
        _build_and_export(spec, checkpoint, folder)
    saved_model = folder / "saved_model"
    inputs, outputs = read_signature(saved_model)
    labels = None if "classes" not in parsed else ("background", *(f"class {i}" for i in range(1, spec.num_classes)))
    return LoadedModel(
        name=f"garden-{experiment}-{spec.backbone}-{spec.input_size}".replace("_", "-"),
        source=source, saved_model_dir=saved_model, inputs=inputs, outputs=outputs, sha256=sha256_of_path(saved_model),
        task="detection", preprocessing=PREPROCESSING, labels=labels, license="Apache-2.0 (TensorFlow Model Garden)",
        description=f"RetinaNet ({spec.backbone}, FPN) from the Model Garden experiment {experiment}, "
                    f"{'weights from ' + parsed['checkpoint'] if checkpoint else 'random weights'}.",
        author="TensorFlow Model Garden (built by edgezoo)",
        details={"spec": spec.to_json(), **details, "random_weights": checkpoint is None},
    )


def _export_dir(options: LoadOptions, spec, details: dict) -> Path:
    from edgezoo.version import __version__ as version
    from edgezoo.zoo import cache

    key = json.dumps({"spec": spec.to_json(), "checkpoint": details.get("checkpoint_index_sha256"), "edgezoo": version}, sort_keys=True)
    return cache.cache_root(options.cache_dir) / "garden" / hashlib.sha256(key.encode()).hexdigest()[:24]


def _build_and_export(spec, checkpoint: str | None, folder: Path) -> None:
    """Build the Garden model, restore the checkpoint, export into a sibling folder, then rename (atomic)."""
    import shutil
    import tempfile

    from edgezoo import _tf
    from edgezoo.detection.garden_model import build, export

    tf = _tf.tf()
    model = build(spec)
    if checkpoint is not None:
        status = tf.train.Checkpoint(model=model).read(checkpoint)
        status.expect_partial()  # the optimizer's slots and the step counter are not needed
        try:
            status.assert_existing_objects_matched()
        except AssertionError as exc:
            raise SourceNotFoundError(f"garden: the checkpoint {checkpoint} does not fit this model ({spec.backbone}, "
                                      f"{spec.num_classes - 1} classes): {str(exc).splitlines()[0]}") from exc
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".partial-"))
    try:
        export(model, spec, staging)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
