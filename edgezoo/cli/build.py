"""`edgezoo build MATRIX.toml`: every model x target x variant of a matrix as a job, resumable (edgezoo/matrix/)."""

from __future__ import annotations

import json
import sys

from edgezoo.cli.console import Console
from edgezoo.cli.flags import common_flags, job_flags, zoo_access_flags


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "build",
        help="convert a matrix of models x targets x option variants, each cell a job in a worker process; resumable",
        description="Read MATRIX (TOML; schema in docs/build.md), convert every cell into OUT/<model>/<target>[-variant]/ and "
        "write OUT/build-report.json and build-report.html. A rerun skips the cells whose content key and files are intact "
        "and redoes failed and missing ones; --force redoes all.",
    )
    parser.add_argument("matrix", help="the matrix file (.toml)")
    parser.add_argument("--out", "-o", dest="out_dir", help="output folder (default: the matrix's `out`, else build)")
    parser.add_argument("--force", action="store_true", help="redo every cell, also those an earlier build left intact")
    job_flags(parser)
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine (default); ray: one Ray actor per job (docs/scale.md)")
    parser.add_argument("--ray-address", dest="ray_address", metavar="ADDR",
                        help="ray: the cluster to join (default: start a local Ray instance for the build)")
    zoo_access_flags(parser, trust=False)  # trust is per model, in the matrix
    common_flags(parser)
    parser.set_defaults(handler=run)


def run(args, console: Console) -> int:
    import edgezoo
    from edgezoo.matrix import BuildOptions
    from edgezoo.options import from_namespace

    options = from_namespace(BuildOptions, args)  # the flags' destinations are the options' field names

    def on_event(event: dict) -> None:
        if console.json_mode:  # one JSON object per line, for build pipelines; the last is build_finished
            print(json.dumps(event), flush=True)
        elif event["event"] == "job_finished":
            line = f"{event['cell']}: {event['status']} (exit {event['exit_code']}, {event['seconds'] or 0:.1f} s)"
            console.warn(line + f": {event['error']}") if event["error"] else print(line, file=sys.stderr, flush=True)
        elif event["event"] == "build_started":
            print(f"... {event['cells']} cells: {event['to_build']} to build, {event['skipped']} intact from an earlier build",
                  file=sys.stderr, flush=True)

    result = edgezoo.build(args.matrix, options, on_event=on_event)
    if not console.json_mode:
        counts = result.summary["counts"]
        print(f"{counts['total']} cells: {counts['built']} built, {counts['skipped']} skipped (intact), {counts['failed']} failed; "
              f"exit {result.exit_code}; report: {result.html_path}", flush=True)
    return result.exit_code
