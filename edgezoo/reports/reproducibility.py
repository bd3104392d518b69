"""The reproducibility section of a target's report.json: what the artifact was made from, and the sha256 of each
file it consists of, so two runs can be compared file by file.

The fingerprint is the sha256 of everything that decides the artifact's bytes: the source and its sha256, the
target profile, the quantisation, the options that shape data or conversion, the sha256 of the calibration and
held-out data, the seed, and the versions of the tools. Two runs with the same fingerprint give byte-identical
artifact files (tests/test_reproducible.py converts twice in fresh processes and compares every file). What still
differs between such runs is listed under `varies`, with the reason.

Sources of difference edgezoo removes: TF.js' node attributes (protobuf maps, in a different order in each process)
are written in sorted order; metadata holds no time; the zip of TFLite associated files and the golden .npz files
carry a fixed date; ONNX is serialised deterministically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Files of a target folder that are records of a run, not part of the artifact: why they differ between runs.
VARIES = {
    "report.json": "created_at is the time of the run; every 'seconds' field is a timing of this run's steps",
    "report.html": "shows report.json's created_at and timings",
}
OPTION_FIELDS = ("seed", "max_calibration_samples", "heldout_fraction", "image_resize", "calibration_features", "input_shapes", "prune",
                 "keep_float", "auto_fallback", "auto_prefer")


def _digest(arrays: dict) -> str | None:
    from edgezoo.reports.json_report import golden_digest

    return golden_digest(arrays)["sha256"] if arrays else None


def fingerprint_inputs(*, model, profile, quantization, options, data) -> dict:
    from edgezoo.reports.json_report import tool_versions

    return {
        "source": model.source,
        "source_sha256": model.sha256,
        "target_profile": profile.to_json(),
        "quantization": quantization.value,
        "options": {name: _plain(getattr(options, name)) for name in OPTION_FIELDS},
        "seed": options.seed,
        "calibration_sha256": _digest(data.calibration),
        "heldout_sha256": _digest(data.heldout),
        "tools": tool_versions(),
    }


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def section(*, model, profile, quantization, options, data, artifact, folder: Path) -> dict:
    inputs = fingerprint_inputs(model=model, profile=profile, quantization=quantization, options=options, data=data)
    return {
        "fingerprint": hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(),
        "inputs": inputs,
        "files": {f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in artifact_files(artifact, folder)},
        "varies": {**VARIES, **_timing_files(artifact.format)},
    }


def _timing_files(format: str) -> dict[str, str]:
    """Overlays of per-op times measured in this run (where the runtime profiles ops): they differ from run to run."""
    if format != "onnx":
        return {}
    from edgezoo.formats.onnx.explorer import LATENCY_OVERLAY

    return {f"explorer/{LATENCY_OVERLAY[0]}.json": "per-op times of this run, from ONNX Runtime's profiler"}


def artifact_files(artifact, folder: Path) -> list[Path]:
    """The artifact's files, labels.txt beside its main file, and the C sources of firmware targets."""
    details = artifact.details
    extra = [artifact.path.parent / details["labels_file"]] if details.get("labels_file") else []
    extra += [folder / name for name in details.get("c_sources", [])]
    return sorted({*artifact.files, *(f for f in extra if f.is_file())})
