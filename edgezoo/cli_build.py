"""`edgezoo build MATRIX.toml`: every model x target x variant of a matrix as a job, resumable (edgezoo/build/)."""

from __future__ import annotations

import json
import sys


def add_build(subparsers, common) -> None:
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
    add_job_flags(parser)
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: worker processes on this machine (default); ray: one Ray actor per job")
    parser.add_argument("--ray-address", dest="ray_address", metavar="ADDR",
                        help="ray: the cluster to join (default: start a local Ray instance for the build)")
    parser.add_argument("--offline", action="store_true", help="never touch the network (also EDGEZOO_OFFLINE=1)")
    parser.add_argument("--cache-dir", metavar="DIR", help="the cache folder for weights and hub modules")
    parser.add_argument("--mirror", metavar="URL_OR_DIR", help="fetch weights and hub modules from this server or folder")
    common(parser)
    parser.set_defaults(handler=run_build)


def add_job_flags(parser) -> None:
    """--jobs, --max-memory, --job-timeout: shared by convert and build."""
    parser.add_argument("--jobs", "-j", type=int, metavar="N", help="jobs at once, each in its own worker process (default: the cores)")
    parser.add_argument("--max-memory", dest="max_memory", metavar="SIZE",
                        help="admit a job only while the expected peaks of the running jobs and its own fit in SIZE (e.g. 8G; "
                        "default: 90%% of the free memory)")
    parser.add_argument("--job-timeout", dest="job_timeout", type=float, metavar="SECONDS",
                        help="stop a job that runs longer and report it as failed (default: no limit)")


def run_build(args, console) -> int:
    import edgezoo
    from edgezoo.matrix import BuildOptions
    from edgezoo.options import from_namespace

    options = from_namespace(BuildOptions, args)

    def on_event(event: dict) -> None:
        if console.json_mode:  # one JSON object per line, for build pipelines; the last is build_finished
            print(json.dumps(event), flush=True)
        elif event["event"] == "job_finished":
            line = f"{event['cell']}: {event['status']} (exit {event['exit_code']}, {event['seconds'] or 0:.1f} s)"
            print(line + (f": {event['error']}" if event["error"] else ""), file=sys.stderr, flush=True)
        elif event["event"] == "build_started":
            print(f"... {event['cells']} cells: {event['to_build']} to build, {event['skipped']} intact from an earlier build",
                  file=sys.stderr, flush=True)

    result = edgezoo.build(args.matrix, options, on_event=on_event)
    counts = result.summary["counts"]
    if not console.json_mode:
        print(f"{counts['total']} cells: {counts['built']} built, {counts['skipped']} skipped (intact), {counts['failed']} failed; "
              f"exit {result.exit_code}; report: {result.html_path}", flush=True)
    return result.exit_code
