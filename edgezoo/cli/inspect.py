"""`edgezoo inspect`: what an artifact file is, read without running it."""

from __future__ import annotations

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="what an artifact file is: inputs, outputs, quantisation, metadata, labels, ops and the runtimes that run them",
        description="Read ARTIFACT (.tflite, .onnx, TF.js model.json or its folder) without running it: format, size, inputs "
        "and outputs with shapes, dtypes and quantisation, the metadata and labels it carries, its ops (for TFLite: which of "
        "LiteRT and TensorFlow Lite Micro has each), and what edgezoo recorded when it made the file (the measured arena).",
    )
    parser.add_argument("artifact", help="a .tflite, an .onnx, or a TF.js model.json (or its folder)")
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    from edgezoo.reports.inspection import describe, inspect

    data = inspect(args.artifact)
    console.result(data, describe(data))
    return 0
