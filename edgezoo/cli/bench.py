"""`edgezoo bench`: latency and peak memory of an artifact on its runtime, next to the original."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags


def add(subparsers) -> None:
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
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    from edgezoo.options import from_namespace
    from edgezoo.validate.latency import BenchOptions, bench, describe

    options = from_namespace(BenchOptions, args)
    result = bench(args.artifact, options, step=console.step)
    console.result(result.to_json(), describe(result))
    return 0
