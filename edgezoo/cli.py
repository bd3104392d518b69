"""The `edgezoo` command: a thin layer over the Python API. Exit codes follow DESIGN.md:
0 success, 1 parity below tolerance, 2 bad usage or input, 3 target cannot be met, 4 converter or runtime failed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import signal
import sys
import threading
import time

from edgezoo.errors import EdgezooError

EXIT_OK, EXIT_PARITY, EXIT_USAGE, EXIT_TARGET, EXIT_FAILURE = 0, 1, 2, 3, 4


class Console:
    """Where the CLI talks: progress and warnings on stderr (a spinner on a terminal), results on stdout."""

    def __init__(self, json_mode: bool, verbose: bool):
        self.json_mode = json_mode
        self.verbose = verbose
        self.tty = sys.stderr.isatty()

    @contextlib.contextmanager
    def step(self, text: str):
        if self.json_mode:
            yield
            return
        start = time.monotonic()
        if not self.tty:
            print(f"... {text}", file=sys.stderr, flush=True)
            yield
            return
        done = threading.Event()

        def spin():
            for frame in itertools.cycle("|/-\\"):
                if done.wait(0.1):
                    break
                print(f"\r{frame} {text} ({time.monotonic() - start:.0f}s)", end="", file=sys.stderr, flush=True)

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()
        try:
            yield
        finally:
            done.set()
            spinner.join()
            print(f"\r\033[K  {text} ({time.monotonic() - start:.1f}s)", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def result(self, data: dict, human: str) -> None:
        print(json.dumps(data, indent=2) if self.json_mode else human, flush=True)

    def progress(self, name: str, done: int, total: int | None) -> None:
        """Download progress: a live line on a terminal, a start and an end line otherwise."""
        if self.json_mode:
            return
        figure = f"{_size(done)} of {_size(total)}" if total else _size(done)
        finished = total is not None and done >= total
        if self.tty:
            print(f"\r\033[K  downloading {name}: {figure}", end="\n" if finished else "", file=sys.stderr, flush=True)
        elif done == 0 or finished:
            print(f"... downloading {name}: {figure}", file=sys.stderr, flush=True)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON result on stdout")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converters' own logs, and tracebacks")


def _zoo_access(parser: argparse.ArgumentParser, trust: bool = True) -> None:
    """Flags for fetching and loading models (typed into LoadOptions by _load_options)."""
    parser.add_argument("--offline", action="store_true", help="never touch the network; say which file to place where when one is missing (also EDGEZOO_OFFLINE=1)")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache folder for weights and hub modules (default: $EDGEZOO_CACHE or ~/.cache/edgezoo)")
    parser.add_argument("--mirror", metavar="URL_OR_DIR", help="fetch weights and hub modules from this server or folder instead of their origin (default: $EDGEZOO_MIRROR)")
    if trust:
        parser.add_argument("--trust-model", action="store_true",
                            help="run a model's own code: allow Lambda layers and custom objects in .keras/.h5 files (their Python "
                            "code is imported and run), and SavedModel graphs with file system ops (ReadFile, WriteFile...), "
                            "Python ops (PyFunc, EagerPyFunc) or ops of a custom op library. It never opens archives whose "
                            "members leave their folder or pass the size limits, never loads a pickle, and never reads a "
                            "weight file outside the model's folder (docs/security.md)")


def _load_options(args, console: Console):
    from edgezoo.zoo import LoadOptions

    return LoadOptions(trust_model=args.trust_model, offline=args.offline, cache_dir=args.cache_dir, mirror=args.mirror,
                       progress=console.progress)


# --- convert -----------------------------------------------------------------------------------


def _add_convert(subparsers) -> None:
    from edgezoo.converter.base import Quantization, QuantizationRequest

    parser = subparsers.add_parser(
        "convert",
        help="convert a model for one or more targets and check parity on the target's runtime",
        description="Load SOURCE from the zoo, convert it for each target profile, and check it against the original "
        "on the runtime that will run it. Writes OUT/<model>/<target>/ with the artifact and report.json.",
    )
    parser.add_argument("source", help="a bundled model (digits-cnn), keras:NAME, hub:HANDLE, or a path to a SavedModel, .keras or .h5")
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
                        type=lambda text: _pair(text, "--calibration-feature"),
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
    parser.add_argument("--input-shape", dest="input_shapes", action="append", metavar="NAME=D0,D1,...",
                        help="fix an input's shape before conversion, batch first (e.g. image=1,48,64,3; just 1,48,64,3 for a "
                        "model with one input); repeatable, overrides the profile's input_shapes")
    from edgezoo.cli_build import add_job_flags

    add_job_flags(parser)
    _zoo_access(parser)
    _common(parser)
    parser.set_defaults(handler=_run_convert)


def _run_convert(args, console: Console) -> int:
    import edgezoo
    from edgezoo.options import ConvertOptions, from_namespace
    from edgezoo.output import safe_name
    from edgezoo.pipeline import Feedback

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
            f"  parity on {target.parity.runtime} over {target.parity.num_samples} inputs: {verdict} ({_headline(target.parity)})\n"
            f"  report: {target.output_dir / 'report.json'}"
        )
        lines.extend(_optimisation_lines(target.report))
    if len(result.targets) > 1:
        failed = [t for t in result.targets if not t.passed]
        lines.append(f"{len(result.targets) - len(failed)} of {len(result.targets)} targets passed"
                     + (f"; exit {result.exit_code} (the most severe of: {', '.join(f'{t.target} {t.exit_code}' for t in failed)})" if failed else "")
                     + f"; summary: {options.out_dir / safe_name(result.model.name) / 'report.html'}")
    console.result(result.to_json(), "\n".join(lines))
    return result.exit_code


def _pair(text: str, flag: str) -> tuple[str, str]:
    """NAME=VALUE as an argparse type: a malformed value is argparse's usage error (exit 2)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{flag} takes NAME=VALUE, got '{text}'")
    return name, value


def _optimisation_lines(report: dict) -> list[str]:
    """Pruning and int8 fallback lines, when the run did either."""
    from edgezoo.converter import prune
    from edgezoo.quantize.loop import summary_lines

    lines = [prune.summary_line(report["pruning"])] if "pruning" in report else []
    if report.get("artifact", {}).get("state_note"):
        lines.append(f"  note: {report['artifact']['state_note']}")
    return lines + summary_lines(report)


def _headline(parity) -> str:
    if parity.error:
        return parity.error
    parts = []
    for output in parity.outputs:
        m = output.metrics
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


# --- validate ------------------------------------------------------------------------------------


def _add_validate(subparsers) -> None:
    from edgezoo.converter.base import Quantization

    parser = subparsers.add_parser(
        "validate",
        help="check an artifact made by another tool (.tflite, .onnx, TF.js model.json) against its original",
        description="Run ARTIFACT on its runtime and SOURCE in TensorFlow on the same inputs, and compare them with a target "
        "profile's tolerances. Writes OUT/<model>/validate-<target>/ with a copy of the artifact, report.json, report.html "
        "and device_check/, as convert does.",
    )
    parser.add_argument("source", help="the original: a bundled model, keras:NAME, hub:HANDLE, or a path to a SavedModel, .keras or .h5")
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
                        type=lambda text: _pair(text, "--input-map"),
                        help="feed the original's input NAME to the artifact's tensor TENSOR, instead of matching by name, "
                        "shape or values; repeatable")
    parser.add_argument("--output-map", dest="output_map", action="append", default=[], metavar="NAME=TENSOR",
                        type=lambda text: _pair(text, "--output-map"),
                        help="compare the original's output NAME with the artifact's tensor TENSOR, instead of matching by "
                        "name, shape or values; repeatable")
    _zoo_access(parser)
    _common(parser)
    parser.set_defaults(handler=_run_validate)


def _run_validate(args, console: Console) -> int:
    from edgezoo.artifacts.inspection import metadata_lines
    from edgezoo.options import from_namespace
    from edgezoo.pipeline import Feedback
    from edgezoo.validate.standalone import ValidateOptions, validate_artifact

    options = from_namespace(ValidateOptions, args)
    feedback = Feedback(step=console.step, warn=console.warn, progress=console.progress)
    result = validate_artifact(args.source, args.artifact, options, feedback)
    validated = result.report["validated"]
    verdict = "passed" if result.passed else "FAILED"
    human = (
        f"{result.target}: {args.artifact} ({result.artifact.format} {result.artifact.quantization.value}, detected "
        f"{validated['quantization_detected']})\n"
        f"  parity on {result.parity.runtime} over {result.parity.num_samples} inputs: {verdict} ({_headline(result.parity)})\n"
        + "".join(f"  {line}\n" for line in _matching_lines(validated["matching"]))
        + f"  report: {result.output_dir / 'report.html'}"
    )
    human += "".join(f"\n{line}" for line in metadata_lines(result.report.get("metadata")))  # read back from the artifact
    console.result(result.to_json(), human)
    return result.parity.exit_code  # 0 within tolerance, 1 parity below it, 4 the runtime could not run it


def _matching_lines(matching: dict) -> list[str]:
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


# --- bench ---------------------------------------------------------------------------------------


def _add_bench(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="latency and peak memory of an artifact on its runtime, next to the original in TensorFlow",
        description="Run ARTIFACT (.tflite, .onnx, TF.js model.json) on its host runtime -- LiteRT single- and multi-threaded, "
        "ONNX Runtime, TF.js in Node -- and the original model in TensorFlow, each in a process of its own: median and p90 "
        "latency over repeated runs after warm-up, batch 1, and peak resident memory.",
    )
    parser.add_argument("artifact", help="a .tflite, an .onnx, or a TF.js model.json (or its folder)")
    parser.add_argument("--source", help="the original model, for the TensorFlow baseline (default: the one named in report.json beside the artifact)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per case (default: 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: 5)")
    parser.add_argument("--threads", type=int, help="threads of the multi-threaded cases (default: every core)")
    parser.add_argument("--no-original", dest="original", action="store_false", help="do not measure the original in TensorFlow")
    parser.add_argument("--input-shape", dest="input_shapes", action="append", metavar="NAME=D0,D1,...",
                        help="measure on a random input of this shape (for inputs with dynamic dimensions); repeatable")
    _common(parser)
    parser.set_defaults(handler=_run_bench)


def _run_bench(args, console: Console) -> int:
    from edgezoo.options import from_namespace
    from edgezoo.validate.latency import BenchOptions, bench, describe

    options = from_namespace(BenchOptions, args)
    result = bench(args.artifact, options, step=console.step)
    console.result(result.to_json(), describe(result))
    return EXIT_OK


# --- inspect -------------------------------------------------------------------------------------


def _add_inspect(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="what an artifact file is: inputs, outputs, quantisation, metadata, labels, ops and the runtimes that run them",
        description="Read ARTIFACT (.tflite, .onnx, TF.js model.json or its folder) without running it: format, size, inputs "
        "and outputs with shapes, dtypes and quantisation, the metadata and labels it carries, its ops (for TFLite: which of "
        "LiteRT and TensorFlow Lite Micro has each), and what edgezoo recorded when it made the file (the measured arena).",
    )
    parser.add_argument("artifact", help="a .tflite, an .onnx, or a TF.js model.json (or its folder)")
    _common(parser)
    parser.set_defaults(handler=_run_inspect)


def _run_inspect(args, console: Console) -> int:
    from edgezoo.artifacts.inspection import describe, inspect

    data = inspect(args.artifact)
    console.result(data, describe(data))
    return EXIT_OK


# --- zoo -----------------------------------------------------------------------------------------


def _add_zoo(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="list, describe and fetch models", description="The models edgezoo can load, and the cache.")
    zoo = parser.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)
    listing = zoo.add_parser("list", help="models on offer (bundled and Keras applications)")
    listing.add_argument("--task", help="only models for this task (e.g. classification)")
    listing.add_argument("--max-params", metavar="N", help="only models with at most N parameters (e.g. 5M, 500k)")
    _common(listing)
    listing.set_defaults(handler=_run_zoo_list)
    for name, handler, text in (("info", _run_zoo_info, "inputs, preprocessing, parameters, size and licence of SOURCE"),
                                ("pull", _run_zoo_pull, "fetch SOURCE's files into the cache and verify them")):
        sub = zoo.add_parser(name, help=text)
        sub.add_argument("source", help="a bundled model, keras:NAME[?options], hub:HANDLE, or a path")
        _zoo_access(sub)
        _common(sub)
        sub.set_defaults(handler=handler)


def _run_zoo_list(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    limit = catalog.parse_count(args.max_params) if args.max_params else None
    entries = catalog.list_models(task=args.task, max_parameters=limit)
    rows = [f"{'SOURCE':32} {'PARAMS':>12} {'INPUT':>12}  {'TASK':15} LICENCE"]
    for e in entries:
        shape = "x".join(map(str, e.input_shape)) if e.input_shape else "-"
        params = f"{e.parameters:,}" if e.parameters else "-"
        rows.append(f"{e.source:32} {params:>12} {shape:>12}  {e.task or '-':15} {e.license or 'unknown'}")
    console.result({"models": [e.to_json() for e in entries]}, "\n".join(rows) + f"\n{len(entries)} models")
    return EXIT_OK


def _run_zoo_info(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    with console.step(f"loading {args.source}"):
        info = catalog.model_info(args.source, _load_options(args, console))
    lines = [f"{info['name']}  ({info['source']})"]
    lines += [f"  input  {s['name']}: {s['shape']} {s['dtype']}" for s in info["inputs"]]
    lines += [f"  output {s['name']}: {s['shape']} {s['dtype']}" for s in info["outputs"]]
    lines.append(f"  preprocessing: {info['preprocessing']['description']}")
    lines.append(f"  parameters: {info['parameters']:,}   SavedModel size: {info['size_bytes'] / 1e6:.1f} MB")
    lines.append(f"  task: {info['task'] or '-'}   labels: {info['labels'] or '-'}   weights licence: {info['license'] or 'unknown'}")
    lines += [f"  file {f['path']} ({f['verification']})" for f in info["files"]]
    console.result(info, "\n".join(lines))
    return EXIT_OK


def _run_zoo_pull(args, console: Console) -> int:
    from edgezoo.zoo import catalog

    with console.step(f"fetching {args.source}"):
        pulled = catalog.pull(args.source, _load_options(args, console))
    lines = [f"{pulled['name']}: ready"] + [f"  {f['path']}\n    from {f['origin']}; {f['verification']}" for f in pulled["files"]]
    if not pulled["files"]:
        lines.append("  nothing to fetch: the model is local or bundled")
    console.result(pulled, "\n".join(lines))
    return EXIT_OK


# --- targets -------------------------------------------------------------------------------------


def _add_targets(subparsers) -> None:
    parser = subparsers.add_parser("targets", help="list and show target profiles", description="Target profiles: the contract with a device.")
    targets = parser.add_subparsers(dest="targets_command", metavar="TARGETS_COMMAND", required=True)
    listing = targets.add_parser("list", help="the built-in target profiles")
    _common(listing)
    listing.set_defaults(handler=_run_targets_list)
    show = targets.add_parser("show", help="every setting of a profile, with what it extends (and its op set)")
    show.add_argument("name", help="a built-in profile name or a path to a .toml profile")
    _common(show)
    show.set_defaults(handler=_run_targets_show)


def _run_targets_list(args, console: Console) -> int:
    from edgezoo.targets import builtin_profiles, resolve_profile

    profiles = [resolve_profile(name) for name in builtin_profiles()]
    rows = [f"{'TARGET':16} {'FORMAT':7} {'RUNTIME':13} {'QUANT':13} DESCRIPTION"]
    rows += [f"{p.name:16} {p.format:7} {p.runtime:13} {p.quantization.value:13} {p.description}" for p in profiles]
    console.result({"targets": [p.to_json() for p in profiles]}, "\n".join(rows))
    return EXIT_OK


def _run_targets_show(args, console: Console) -> int:
    from edgezoo.targets import resolve_profile
    from edgezoo.targets.op_check import op_set

    profile = resolve_profile(args.name)
    data = profile.to_json()
    ops = sorted(op_set(profile.op_set).supported_ops()) if profile.op_set else None
    data["op_set_ops"] = ops
    lines = [f"{profile.name}  ({profile.path})", f"  {profile.description}"]
    if profile.extends:
        lines.append(f"  extends: {' -> '.join(profile.extends)}")
    for key, value in data.items():
        if key in ("name", "description", "extends", "tolerances", "op_set_ops") or value in (None, {}, False):
            continue
        if key == "arena_margin" and not profile.needs_arena:
            continue
        lines.append(f"  {key} = {value:_}" if isinstance(value, int) and not isinstance(value, bool) else f"  {key} = {value}")
    for mode, limits in data["tolerances"].items():
        lines.append(f"  tolerances.{mode}: " + ", ".join(f"{k} {v:g}" for k, v in limits.items()))
    if ops:
        lines.append(f"  {profile.op_set} supports {len(ops)} ops: {', '.join(ops)}")
    console.result(data, "\n".join(lines))
    return EXIT_OK


# --- entry point -------------------------------------------------------------------------------

def _add_build(subparsers) -> None:
    from edgezoo.cli_build import add_build

    add_build(subparsers, _common)


COMMANDS = (_add_convert, _add_build, _add_validate, _add_bench, _add_inspect, _add_zoo, _add_targets)


def build_parser() -> argparse.ArgumentParser:
    import edgezoo

    parser = argparse.ArgumentParser(
        prog="edgezoo",
        description="Take pretrained models from a zoo to edge devices (TFLite, TF.js, ONNX) and prove parity on the real runtime.",
    )
    parser.add_argument("--version", action="version", version=f"edgezoo {edgezoo.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the main thread is, so that every `with` and `finally` on the way out runs:
    staging folders are removed, subprocess.run kills its child (TFLM, Node)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    for other in STOP_SIGNALS:  # a second signal must not cut the clean-up short (SIGKILL still can)
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """After the unwinding: stop what is left below this process (the browser and its helpers), say so, 128 + signal."""
    from edgezoo import _processes

    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    from edgezoo.validate.runners import tfjs_browser

    tfjs_browser.forget_shared_session()  # its driver is stopped below; closing it at exit would wait for a dead process
    _processes.stop_descendants()
    print(f"edgezoo: interrupted by {signal.Signals(signum).name}; child processes stopped and staging folders removed, "
          "no partial output was kept.", file=sys.stderr)
    return 128 + signum


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgezoo import _tf

    _tf.set_verbose(args.verbose)
    _tf.configure_environment()
    console = Console(json_mode=args.json, verbose=args.verbose)
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _on_signal)
    try:
        return args.handler(args, console)
    except EdgezooError as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"edgezoo: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug or an unwrapped third-party failure: say so, keep the code distinct
        if args.verbose:
            raise
        print(f"edgezoo: internal error: {type(exc).__name__}: {exc}. Re-run with --verbose for the traceback.", file=sys.stderr)
        return EXIT_FAILURE


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
