"""A finetune run: data and backbone, training, the trained model published as a zoo source, then converted for every
target (calibration from its training split, parity and task accuracy on its held-out test split), and the report.

    OUT/<name>/finetune/   saved_model/ (with edgezoo.json), labels.txt, report.json, report.html
    OUT/<name>/<target>/   what `edgezoo convert` writes for each target
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgezoo.calibration import CalibrationSet
from edgezoo.formats.base import Quantization
from edgezoo.errors import EdgezooError, UsageError
from edgezoo.transfer import accuracy
from edgezoo.transfer.backbone import load_backbone
from edgezoo.transfer.data import read_labelled, stratified_split
from edgezoo.transfer.export import save, write_labels
from edgezoo.transfer.options import FinetuneOptions
from edgezoo.transfer.train import INPUT_NAME, OUTPUT_NAME, EpochReport, raw_preprocessing, train
from edgezoo.output import OutputTree
from edgezoo.pipeline import ConversionResult, resolve_targets
from edgezoo.target_run import Feedback
from edgezoo.reports.json_report import write_json
from edgezoo.zoo.reference import run_reference
from edgezoo.zoo import LoadedModel, load

FOLDER = "finetune"
QAT_MODEL = "saved_model_qat"  # beside saved_model: the quantisation-aware trained model, for the int8 targets
QAT_SUFFIX = "-qat"


@dataclass(frozen=True)
class FinetuneResult:
    model: LoadedModel  # the trained model, loaded back through the zoo
    output_dir: Path  # OUT/<name>/finetune
    report: dict
    conversion: ConversionResult | None = field(default=None, repr=False)
    qat_conversion: ConversionResult | None = field(default=None, repr=False)  # --qat: the int8 targets of the QAT model
    error: EdgezooError | None = field(default=None, repr=False, compare=False)  # the conversion's, when it raised

    @property
    def accuracy(self) -> list[dict]:
        return self.report["accuracy"]

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        return max((c.exit_code for c in (self.conversion, self.qat_conversion) if c is not None), default=0)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict:
        return {"passed": self.passed, "exit_code": self.exit_code, "output_dir": str(self.output_dir),
                "saved_model": str(self.model.saved_model_dir), "model": self.model.to_json(),
                "test_accuracy": self.report["test"]["accuracy"], "accuracy": self.accuracy,
                "conversion": self.conversion.to_json() if self.conversion is not None else None,
                "qat_conversion": self.qat_conversion.to_json() if self.qat_conversion is not None else None,
                "error": str(self.error) if self.error is not None else None}


def finetune(source: str, options: FinetuneOptions, feedback: Feedback | None = None, on_epoch: EpochReport | None = None) -> FinetuneResult:
    feedback = feedback or Feedback()
    profiles = resolve_targets(options.targets) if options.targets else []  # a bad target fails before any slow work
    qat_targets = tuple(target_spec(p) for p in profiles if p.quantization is Quantization.INT8) if options.qat else ()
    if options.qat and not qat_targets:
        raise UsageError("--qat trains for full-integer (int8) targets, and none was given: add --target microcontroller or "
                         "--target phone-int8 (or another profile with quantization = \"int8\").")
    with feedback.step(f"loading the feature extractor {source}"):
        backbone = load_backbone(source, options.load_options(feedback.progress), options.features)
    name = options.name or f"{backbone.loaded.name.strip('.-_') or 'model'}-finetuned"
    tree = OutputTree(options.out_dir, name, options.force)
    for note in tree.check([FOLDER, *(p.name for p in profiles)]):
        feedback.warn(note)
    qat_tree = OutputTree(options.out_dir, f"{name}{QAT_SUFFIX}", options.force)
    if qat_targets:  # the quantisation-aware model's targets go to OUT/<name>-qat/: fail now, not after training
        qat_tree.check([p.name for p in profiles if target_spec(p) in qat_targets])
    try:
        with feedback.step(f"reading {options.data}"):
            data = read_labelled(options.data, backbone.image_shape, resize=options.image_resize,
                                 image_feature=options.image_feature, label_feature=options.label_feature)
        for message in data.warnings:
            feedback.warn(message)
        splits = stratified_split(data, options.validation_fraction, options.test_fraction, options.seed)
        sizes = splits.sizes()
        with feedback.step(f"training a head for {len(data.class_names)} classes on {backbone.loaded.name} "
                           f"({sizes['train']} training, {sizes['validation']} validation images)"):
            training = train(backbone, splits, options, on_epoch)
        quantized = None
        if qat_targets:
            from edgezoo.transfer.qat import train_quantized

            with feedback.step(f"quantisation-aware training for {', '.join(p.name for p in profiles if target_spec(p) in qat_targets)}"):
                quantized = train_quantized(training.model, splits, options, training, on_epoch)
        record = training_record(backbone, data, splits, training, options)
        card = {"name": name, "task": "classification", "labels": list(data.class_names),
                "preprocessing": raw_preprocessing(backbone).to_json(),
                "description": f"{len(data.class_names)}-class image classifier trained by edgezoo finetune on "
                               f"{backbone.loaded.name} features",
                "author": "edgezoo finetune", "license": backbone.loaded.license, "training": record}
        with tree.staging(FOLDER) as staging:
            save(training.model, staging / "saved_model", card)
            if quantized is not None:
                save(quantized, staging / QAT_MODEL, {**card, "name": f"{name}{QAT_SUFFIX}",
                                                      "description": card["description"] + ", quantisation-aware trained"})
            write_labels(staging / "labels.txt", data.class_names)
            final = tree.publish(staging, FOLDER)
    finally:
        tree.discard_empty()
        qat_tree.discard_empty()
    model = load(str(final / "saved_model"), options.load_options())  # through the zoo, as any user of the folder would
    float_scores, conversion, error, rows = convert_and_measure(model, splits, options, feedback, [target_spec(p) for p in profiles])
    qat_conversion = None
    if quantized is not None:
        qat_model = load(str(final / QAT_MODEL), options.load_options())
        _, qat_conversion, qat_error, qat_rows = convert_and_measure(qat_model, splits, options, feedback, list(qat_targets), " + QAT")
        rows += qat_rows
        error = error or qat_error
    report = {"kind": "finetune", "model": model.to_json(), "backbone": backbone.to_json(), "training": record,
              "test": {k: v for k, v in float_scores.items() if k != "predicted"}, "accuracy": rows,
              "misclassified": accuracy.misclassified(float_scores, splits.test),
              "conversion_error": str(error) if error is not None else None,
              "targets": [{"target": t.target, "qat": c is qat_conversion, "output_dir": str(t.output_dir) if t.output_dir else None,
                           "status": t.status} for c in (conversion, qat_conversion) if c is not None for t in c.targets]}
    write_report(final, report, splits.test)
    return FinetuneResult(model, final, report, conversion, qat_conversion, error)


def target_spec(profile) -> str:
    """How to name a resolved profile to convert: a built-in by its name, a user's profile by its file."""
    from edgezoo.targets import builtin_profiles

    builtin = builtin_profiles().get(profile.name)
    return profile.name if profile.path is None or (builtin is not None and builtin.resolve() == Path(profile.path).resolve()) \
        else str(profile.path)


def convert_and_measure(model: LoadedModel, splits, options: FinetuneOptions, feedback, targets: list[str], label: str = ""):
    """The model's test-split scores in TensorFlow, its conversion for `targets` (None and the error when it raised: a run
    of one target raises its error), and the accuracy table's rows: the float model, then each target on its runtime."""
    with feedback.step(f"running {model.name} on {len(splits.test)} test images"):
        outputs = run_reference(model, {INPUT_NAME: splits.test.pixels})[OUTPUT_NAME]
    float_scores = accuracy.scores(outputs, splits.test.labels, splits.test.class_names)
    conversion, error = None, None
    if targets:
        try:
            conversion = convert_trained(model, splits, options, feedback, tuple(targets))
        except EdgezooError as exc:  # the report still says what was trained, and why the target has no artifact
            error = exc
    with feedback.step(f"measuring task accuracy of {model.name} on every runtime"):
        rows = accuracy.accuracy_table(float_scores, conversion, splits.test, INPUT_NAME, OUTPUT_NAME, label)
    if error is not None:
        from edgezoo.targets import resolve_profile

        rows += accuracy.failed_rows([resolve_profile(target).name for target in targets], error, label)
    return float_scores, conversion, error, rows


def calibration_set(splits, max_samples: int, seed: int) -> CalibrationSet:
    """Calibration from the training split (a seeded sample), parity on the test split, with its labels."""
    train_pixels = splits.train.pixels
    if len(train_pixels) > max_samples:
        train_pixels = train_pixels[np.sort(np.random.default_rng(seed).permutation(len(train_pixels))[:max_samples])]
    return CalibrationSet({INPUT_NAME: train_pixels}, {INPUT_NAME: splits.test.pixels}, heldout_labels=splits.test.labels,
                          origin="user", details={"reader": "finetune", "calibration": "training split", "heldout": "test split",
                                                  "seed": seed})


def convert_trained(model: LoadedModel, splits, options: FinetuneOptions, feedback, targets=None) -> ConversionResult:
    from edgezoo.pipeline import convert

    calibration = calibration_set(splits, options.max_calibration_samples, options.seed)
    return convert(model, options.convert_options(calibration, targets), feedback)


def training_record(backbone, data, splits, training, options: FinetuneOptions) -> dict:
    settings = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
                if f.name not in ("data", "out_dir", "targets", "force", "cache_dir", "mirror", "offline", "trust_model")}
    return {"backbone": backbone.to_json(), "data": {**data.details, "classes": list(data.class_names),
                                                    "class_counts": data.class_counts, "warnings": list(data.warnings)},
            "split": {**splits.sizes(), "seed": options.seed, "stratified": True,
                      "class_counts": {part: getattr(splits, part).class_counts for part in ("train", "validation", "test")}},
            "class_weights": training.class_weights, "history": training.history, "best": training.best,
            "settings": settings}


def write_report(folder: Path, report: dict, test) -> None:
    from edgezoo.reports.finetune_html import write_finetune_html

    write_json(folder / "report.json", report)
    write_finetune_html(folder, report, test)
