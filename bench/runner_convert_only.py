"""The job runner doing the official tools' work: conversion only, for four targets, in 2 worker processes
(bench/convert_only.py: the parent loads and prepares the model once, the workers share it).

    python bench/runner_convert_only.py SAVED_MODEL CALIBRATION.npz OUT_DIR TARGET...  -> OUT_DIR/jobs.json

Writes each job's seconds, peak resident memory (the worker's own) and failure, if any.
"""

import json
import sys
from pathlib import Path

import convert_only  # bench/convert_only.py, beside this script


def failure_of(outcome) -> str | None:
    """A job's own failure (Converted.failure), or its worker's (a TargetResult's TargetFailure: a crash, an abort)."""
    failure = outcome.result.failure
    return failure if failure is None or isinstance(failure, str) else failure.message


def main() -> None:
    saved_model, calibration, out, *targets = sys.argv[1:]
    outcomes = convert_only.run(saved_model, calibration, tuple(targets), Path(out), jobs=2)
    (Path(out) / "jobs.json").write_text(json.dumps({o.result.target: {"seconds": o.seconds, "peak_rss_mb": (o.peak_rss_bytes or 0) / 2**20,
                                        "failure": failure_of(o)}
                                                     for o in outcomes}) + "\n")


if __name__ == "__main__":
    main()
