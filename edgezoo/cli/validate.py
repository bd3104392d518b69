"""`edgezoo validate`: an artifact made by another tool, checked against its original."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.convert import parity_headline
from edgezoo.cli.flags import common_flags, name_value, zoo_access_flags


def add(subparsers) -> None:
    from edgezoo.formats.base import Quantization

    parser = subparsers.add_parser(
        "validate",
        help="check an artifact made by another tool (.tflite, .onnx, TF.js model.json) against its original",
        description="Run ARTIFACT on its runtime and SOURCE in TensorFlow on the same inputs, and compare them with a target "
        "profile's tolerances. Writes OUT/<model>/validate-<target>/ with a copy of the artifact, report.json, report.html "
        "and device_check/, as convert does.",
    )
    parser.add_argument("source", help="the original: a bundled model, keras:NAME, hub:HANDLE, or a path to a SavedModel, .keras or .h5/.hdf5")
    parser.add_argument("artifact", help="a .tflite, an .onnx, or a TF.js model.json (or its folder)")
    parser.add_argument("--target", "-t", metavar="TARGET",
                        help="the profile whose runtime and tolerances apply (default: phone for .tflite, onnx for .onnx, browser for TF.js)")
    parser.add_argument("--quantize", choices=[q.value for q in Quantization],
                        help="which of the profile's tolerances apply (default: the quantisation detected in the artifact)")
    parser.add_argument("--calibration", metavar="PATH", help="inputs to check on, as for convert (default: the model's own data, else random)")
    parser.add_argument("--out", "-o", dest="out_dir", default="build", help="output folder (default: build)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed for data sampling (default: 0)")
    parser.add_argument("--input-map", dest="input_map", action="append", default=[], metavar="NAME=TENSOR",
                        type=lambda text: name_value(text, "--input-map"),
                        help="feed the original's input NAME to the artifact's tensor TENSOR, instead of matching by name, "
                        "shape or values; repeatable")
    parser.add_argument("--output-map", dest="output_map", action="append", default=[], metavar="NAME=TENSOR",
                        type=lambda text: name_value(text, "--output-map"),
                        help="compare the original's output NAME with the artifact's tensor TENSOR, instead of matching by "
                        "name, shape or values; repeatable")
    zoo_access_flags(parser)
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    from edgezoo.reports.inspection import metadata_lines
    from edgezoo.options import from_namespace
    from edgezoo.target_run import Feedback
    from edgezoo.validate_artifact import ValidateOptions, validate_artifact

    options = from_namespace(ValidateOptions, args)
    feedback = Feedback(step=console.step, warn=console.warn, progress=console.progress)
    result = validate_artifact(args.source, args.artifact, options, feedback)
    validated = result.report["validated"]
    verdict = "passed" if result.passed else "FAILED"
    human = (
        f"{result.target}: {args.artifact} ({result.artifact.format} {result.artifact.quantization.value}, detected "
        f"{validated['quantization_detected']})\n"
        f"  parity on {result.parity.runtime} over {result.parity.num_samples} inputs: {verdict} ({parity_headline(result.parity)})\n"
        + "".join(f"  {line}\n" for line in matching_lines(validated["matching"]))
        + f"  report: {result.output_dir / 'report.html'}"
    )
    human += "".join(f"\n{line}" for line in metadata_lines(result.report.get("metadata")))  # read back from the artifact
    console.result(result.to_json(), human)
    return result.parity.exit_code  # 0 within tolerance, 1 parity below it, 4 the runtime could not run it


def matching_lines(matching: dict) -> list[str]:
    """One line per tensor matched by values (or left undecided): the pair, its error and the margin."""
    lines = []
    for kind, matches in matching.items():
        for name, match in matches.items():
            if match["how"] == "matched by values":
                doubt = "" if match["certain"] else " -- UNCERTAIN"
                lines.append(f"{kind[:-1]} {name} = {match['tensor']}: matched by values (error {match['error']:.3g}; the best "
                             f"alternative, {name} = {match['alternative']}, totals {match['alternative_error']:.3g} against "
                             f"{match['assignment_error']:.3g}: {match['margin']:.3g}x){doubt}")
            elif match["how"].startswith("undecided"):
                lines.append(f"{kind[:-1]} {name} = {match['tensor']}: {match['how']}")
    return lines
