"""`edgezoo convert`: a model for one or more targets, parity checked on each target's runtime."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags, job_flags, name_value, zoo_access_flags


def add(subparsers) -> None:
    from edgezoo.formats.base import AutoPreference, Quantization, QuantizationRequest

    parser = subparsers.add_parser(
        "convert",
        help="convert a model for one or more targets and check parity on the target's runtime",
        description="Load SOURCE from the zoo, convert it for each target profile, and check it against the original "
        "on the runtime that will run it. Writes OUT/<model>/<target>/ with the artifact and report.json.",
    )
    parser.add_argument("source", help="a bundled model (digits-cnn), keras:NAME, hub:HANDLE, or a path to a SavedModel, .keras or .h5/.hdf5")
    parser.add_argument("--target", "-t", action="append", dest="targets", metavar="TARGET",
                        help="target profile name (phone, ...), a path to a .toml profile, or 'all'; repeatable (default: phone)")
    parser.add_argument("--out", "-o", dest="out_dir", default="build", help="output folder (default: build)")
    parser.add_argument("--quantize", choices=[q.value for q in (*Quantization, *QuantizationRequest)],
                        help="override the profile's quantisation; auto: the smallest artifact that meets the target's tolerance")
    parser.add_argument("--calibration", metavar="PATH",
                        help="calibration and validation data: a folder of images (jpg, png, bmp; searched recursively), "
                        "or a .npz/.npy of preprocessed model inputs, or a .tfrecord of tf.train.Example records")
    parser.add_argument("--calibration-samples", dest="max_calibration_samples", type=int, default=500, metavar="N",
                        help="calibration samples to use (default: 500)")
    parser.add_argument("--calibration-feature", dest="calibration_features", action="append", default=[], metavar="INPUT=FEATURE",
                        type=lambda text: name_value(text, "--calibration-feature"),
                        help="TFRecord: read model input INPUT from feature FEATURE (default: the input's own name); repeatable")
    parser.add_argument("--force", action="store_true", help="replace existing output folders")
    parser.add_argument("--seed", type=int, default=0, help="seed for data sampling (default: 0)")
    parser.add_argument("--prune", type=float, metavar="SPARSITY",
                        help="magnitude-prune to this share of zero weights (0..1), fine-tuned by distillation from the original")
    parser.add_argument("--keep-float", action="append", default=[], metavar="LAYER",
                        help="int8: leave this layer in float (a layer name as the report lists it); repeatable")
    parser.add_argument("--no-auto-fallback", dest="auto_fallback", action="store_false",
                        help="int8: do not move the worst layers back to float when parity misses the tolerance")
    parser.add_argument("--explain-quantization", dest="explain_quantization", action="store_true",
                        help="int8/int16x8: measure each layer's error even when parity passes (the report's per-layer figures)")
    parser.add_argument("--auto-prefer", dest="auto_prefer", choices=[p.value for p in AutoPreference],
                        help="--quantize auto: keep the smallest passing candidate (size, the default), or the smallest "
                        "full-integer one (int8, int16x8) when one passes (integer: for NPUs, DSPs and Edge TPUs)")
    parser.add_argument("--no-suggest", dest="suggest", action="store_false",
                        help="when parity misses the tolerance, do not measure the other quantisations for one that passes")
    parser.add_argument("--input-shape", dest="input_shapes", action="append", metavar="NAME=D0,D1,...",
                        help="fix an input's shape before conversion, batch first (e.g. image=1,48,64,3; just 1,48,64,3 for a "
                        "model with one input); repeatable, overrides the profile's input_shapes")
    zoo_access_flags(parser)
    job_flags(parser)
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    import edgezoo
    from edgezoo.options import ConvertOptions, from_namespace
    from edgezoo.output import safe_name
    from edgezoo.reports.placement import summary_lines as placement_lines
    from edgezoo.target_run import Feedback

    options = from_namespace(ConvertOptions, args)  # the flags' destinations are the options' field names
    result = edgezoo.convert(args.source, options, feedback=Feedback(step=console.step, warn=console.warn, progress=console.progress))
    lines = []
    for target in result.targets:
        if target.failure is not None:
            lines.append(f"{target.target}: {target.status.upper()} (exit {target.exit_code}): {target.failure.message}")
            continue
        verdict = {"passed": "passed", "parity failed": "FAILED", "runtime failed": "RUNTIME FAILED"}[target.status]
        size_kb = target.artifact.size_bytes / 1024
        lines.append(
            f"{target.target}: {target.artifact.path} ({size_kb:.1f} KiB, {target.artifact.format} {target.artifact.quantization.value})\n"
            f"  parity on {target.parity.runtime} over {target.parity.num_samples} inputs: {verdict} ({parity_headline(target.parity)})\n"
            f"  report: {target.output_dir / 'report.json'}"
        )
        lines.extend(placement_lines(target.report))
        lines.extend(optimisation_lines(target.report))
    if len(result.targets) > 1:
        failed = [t for t in result.targets if not t.passed]
        lines.append(f"{len(result.targets) - len(failed)} of {len(result.targets)} targets passed"
                     + (f"; exit {result.exit_code} (the most severe of: {', '.join(f'{t.target} {t.exit_code}' for t in failed)})" if failed else "")
                     + f"; summary: {options.out_dir / safe_name(result.model.name) / 'report.html'}")
    console.result(result.to_json(), "\n".join(lines))
    return result.exit_code


def optimisation_lines(report: dict) -> list[str]:
    """Pruning and int8 fallback lines, when the run did either."""
    from edgezoo.quantize import prune
    from edgezoo.quantize import suggest
    from edgezoo.quantize.loop import summary_lines

    lines = [prune.summary_line(report["pruning"])] if "pruning" in report else []
    if report.get("artifact", {}).get("state_note"):
        lines.append(f"  note: {report['artifact']['state_note']}")
    return lines + summary_lines(report) + suggest.summary_lines(report)


def parity_headline(parity) -> str:
    if parity.error:
        return parity.error
    parts = []
    for output in parity.outputs:
        m = output.metrics
        if "detection_recall" in m:  # a detector's matched boxes (edgezoo/validate/detection.py)
            figures = [f"recall {m['detection_recall']:.3f}", f"precision {m['detection_precision']:.3f}",
                       f"mean IoU {m['mean_matched_iou']:.3f}", f"max score diff {m['max_score_difference']:.2g}",
                       f"{int(m['matched_detections'])} of {int(m['reference_detections'])} matched"]
        else:
            figures = [f"SNR {m['snr_db']:.1f} dB", f"max err/range {m['max_error_over_range']:.2g}", f"max abs err {m['max_abs_error']:.3g}"] if m else []
        if m.get("top1_agreement") is not None:
            figures.append(f"top-1 agreement {100 * m['top1_agreement']:.1f}%")
        if m.get("decision_agreement") is not None:
            figures.append(f"decisions agree {100 * m['decision_agreement']:.1f}%")
        text = f"{output.name}: {', '.join(figures)}"
        if output.violations:
            text += f" -- {'; '.join(output.violations)}"
        parts.append(text)
    return "; ".join(parts)
