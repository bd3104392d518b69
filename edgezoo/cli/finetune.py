"""`edgezoo finetune`: transfer learning on a zoo feature extractor, then conversion and task accuracy on every runtime."""

from __future__ import annotations

import sys

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags, zoo_access_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="train a classifier head on a zoo feature extractor with your labelled images, then convert it",
        description="Use SOURCE as a feature extractor, train a head (dropout, a hidden ReLU layer, dense) for the classes in "
        "--data, export the model with its preprocessing inside (raw 0-255 pixels in) to OUT/<name>/finetune/, convert it for "
        "every --target and report its task accuracy against the true labels on each target's runtime.",
    )
    parser.add_argument("source", help="keras:NAME (built without its top), hub:HANDLE of a feature-vector module, digits-cnn, or "
                        "a .h5/SavedModel cut at ?features=LAYER (default: below its last layer with weights)")
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="a folder with one sub-folder of images per class (the sorted folder names are the labels), "
                        "a .npz with x (images, raw pixels 0-255) and y (labels), or a .tfrecord with image and label features")
    parser.add_argument("--target", "-t", action="append", dest="targets", metavar="TARGET",
                        help="convert the trained model for this target profile (phone, microcontroller, ...); repeatable")
    parser.add_argument("--out", "-o", dest="out_dir", default=None, help="output folder (default: build)")
    parser.add_argument("--name", help="the trained model's name, its folder under --out (default: <backbone>-finetuned)")
    parser.add_argument("--features", metavar="LAYER", help="cut a local or bundled Keras model at this layer")
    number = {"type": int, "default": None, "metavar": "N"}
    ratio = {"type": float, "default": None, "metavar": "X"}
    parser.add_argument("--epochs", **number, help="most epochs of head training (default: 20; early stopping on validation loss)")
    parser.add_argument("--patience", **number, help="epochs without a better validation loss before stopping (default: 3)")
    parser.add_argument("--batch-size", dest="batch_size", **number, help="default: 32")
    parser.add_argument("--learning-rate", dest="learning_rate", **ratio, help="head learning rate (default: 0.001)")
    parser.add_argument("--dropout", **ratio, help="dropout before each dense layer of the head (default: 0.2)")
    parser.add_argument("--hidden-units", dest="hidden_units", **number,
                        help="a hidden ReLU layer of N units in the head, 0 for a linear head (default: 64)")
    parser.add_argument("--augment", action="store_true", help="random flips, small rotations and crops of the training images")
    parser.add_argument("--fine-tune-layers", dest="fine_tune_layers", **number,
                        help="then train the top N backbone layers too, at a lower learning rate (batch-norm layers stay frozen)")
    parser.add_argument("--fine-tune-epochs", dest="fine_tune_epochs", **number, help="default: 10")
    parser.add_argument("--fine-tune-learning-rate", dest="fine_tune_learning_rate", **ratio, help="default: --learning-rate / 10")
    parser.add_argument("--qat", action="store_true",
                        help="also train a quantisation-aware model for the int8 targets, and report int8 accuracy with and without it")
    parser.add_argument("--qat-epochs", dest="qat_epochs", **number, help="default: 3")
    parser.add_argument("--validation-fraction", dest="validation_fraction", **ratio, help="share of each class for validation (default: 0.15)")
    parser.add_argument("--test-fraction", dest="test_fraction", **ratio, help="share of each class held out for the test (default: 0.15)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the split, the initial weights and the augmentation (default: 0)")
    parser.add_argument("--image-resize", dest="image_resize", choices=("bilinear", "nearest", "bicubic", "area"), default=None)
    parser.add_argument("--image-feature", dest="image_feature", default=None, metavar="KEY", help="TFRecord image feature (default: image)")
    parser.add_argument("--label-feature", dest="label_feature", default=None, metavar="KEY", help="TFRecord label feature (default: label)")
    parser.add_argument("--calibration-samples", dest="max_calibration_samples", **number,
                        help="int8 targets: training images that calibrate the quantiser (a seeded sample; default: 500)")
    parser.add_argument("--force", action="store_true", help="replace existing output folders")
    zoo_access_flags(parser)
    common_flags(parser)
    parser.set_defaults(handler=run)


def epoch_line(console: Console):
    """A line per epoch on a terminal; nothing otherwise (logs and --json stay clean)."""
    if console.json_mode or not console.tty:
        return None

    def report(phase: str, epoch: int, epochs: int, row: dict) -> None:
        figures = ", ".join(f"{key} {row[key]:.4f}" for key in ("loss", "accuracy", "val_loss", "val_accuracy") if key in row)
        print(f"\r\033[K  {phase} epoch {epoch}/{epochs}: {figures}", file=sys.stderr, flush=True)

    return report


def run(args, console: Console) -> int:
    import edgezoo
    from edgezoo.transfer import FinetuneOptions
    from edgezoo.options import from_namespace
    from edgezoo.target_run import Feedback

    options = from_namespace(FinetuneOptions, args)  # the flags' destinations are the options' field names
    result = edgezoo.finetune(args.source, options, feedback=Feedback(step=console.step, warn=console.warn, progress=console.progress),
                              on_epoch=epoch_line(console))
    console.result(result.to_json(), "\n".join(summary_lines(result)))
    return result.exit_code


def summary_lines(result) -> list[str]:
    training = result.report["training"]
    best = ", ".join(f"{phase} {chosen['epoch']} of {chosen['epochs_run']}" for phase, chosen in training["best"].items())
    lines = [f"trained model: {result.model.saved_model_dir} ({len(result.model.labels)} classes: {', '.join(result.model.labels[:8])}"
             f"{' ...' if len(result.model.labels) > 8 else ''})",
             f"  split: {training['split']['train']} train, {training['split']['validation']} validation, {training['split']['test']} test; "
             f"best epochs: {best}",
             "task accuracy on the test split, against the true labels:"]
    width = max(len(row["model"]) for row in result.accuracy)
    for row in result.accuracy:
        if row.get("accuracy") is None:
            lines.append(f"  {row['model']:<{width}}  {row.get('runtime') or '-':<12} not measured: {row.get('error') or row.get('status')}")
            continue
        parity = f"  [{row['status']}]" if row.get("status") else ""
        lines.append(f"  {row['model']:<{width}}  {row['runtime']:<12} {100 * row['accuracy']:5.1f}% of {row['samples']}"
                     f"  (agrees with its float model {100 * row['agreement_with_float']:.1f}%){parity}")
    if result.error is not None:
        lines.append(f"conversion stopped: {result.error}")
    lines.append(f"report: {result.output_dir / 'report.html'}")
    return lines
