"""report.json: what was converted, how, and how closely it matches the original. Versioned schema."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

SCHEMA_VERSION = 1

TOOL_PACKAGES = ("edgezoo", "tensorflow", "tf-keras", "ai-edge-litert", "tf2onnx", "onnx", "onnxruntime", "tensorflowjs", "tflite-micro", "numpy")


def tool_versions() -> dict[str, str | None]:
    versions = {}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def target_report(*, model, profile, artifact, parity, calibration, output_dir: Path) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {key: value for key, value in model.to_json().items()},
        "target": profile.name,
        "target_profile": profile.to_json(),
        "format": artifact.format,
        "quantization": artifact.quantization.value,
        "artifact": artifact.to_json(relative_to=output_dir),
        "parity": parity.to_json(),
        "calibration": calibration.statistics(),
        "tools": tool_versions(),
    }


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)
