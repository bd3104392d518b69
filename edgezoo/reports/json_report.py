"""report.json: what was converted, how, and how closely it matches the original.

Two kinds of report, each with a versioned JSON schema in edgezoo/reports/schemas/ (described for people in
docs/report-schema.md): one per target folder (`OUT/<model>/<target>/report.json`), and one run
summary per model folder (`OUT/<model>/report.json`) whose targets form the parity matrix.
Bump SCHEMA_VERSION when a field is removed or changes meaning; adding fields keeps it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from importlib import metadata
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
TARGET_REPORT_KIND = "edgezoo.target-report"
RUN_SUMMARY_KIND = "edgezoo.run-summary"
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
BUILD_REPORT_KIND = "edgezoo.build-report"  # OUT/build-report.json of `edgezoo build` (edgezoo/matrix/report.py)
SCHEMA_FILES = {TARGET_REPORT_KIND: "target-report.schema.json", RUN_SUMMARY_KIND: "run-summary.schema.json",
                BUILD_REPORT_KIND: "build-report.schema.json"}

TOOL_PACKAGES = ("edgezoo", "tensorflow", "tf-keras", "ai-edge-litert", "tf2onnx", "onnx", "onnxruntime", "tensorflowjs", "tflite-micro", "numpy")


def tool_versions() -> dict[str, str | None]:
    versions = {}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def schema_for(kind: str) -> dict:
    """The JSON schema of a report kind (TARGET_REPORT_KIND or RUN_SUMMARY_KIND)."""
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text())


def golden_digest(inputs: dict[str, np.ndarray]) -> dict:
    """Identifies the golden inputs, so reports compared side by side can show they saw the same data."""
    digest = hashlib.sha256()
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return {"num_samples": len(next(iter(inputs.values()))), "sha256": digest.hexdigest()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def target_report(
    *, model, profile, artifact, parity, calibration, output_dir: Path, device_check: dict | None = None, footprint: dict | None = None
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": TARGET_REPORT_KIND,
        "created_at": _now(),
        "passed": parity.passed,
        "model": {key: value for key, value in model.to_json().items()},
        "target": profile.name,
        "target_profile": profile.to_json(),
        "format": artifact.format,
        "quantization": artifact.quantization.value,
        "artifact": artifact.to_json(relative_to=output_dir),
        "footprint": footprint,  # ops, parameters, MACs, model size, arena: what the artifact asks of the device
        "parity": parity.to_json(),
        "calibration": calibration.statistics(),
        "golden": golden_digest(calibration.heldout),
        "device_check": device_check,
        "tools": tool_versions(),
    }


def run_summary(model, targets: list, model_dir: Path, golden: dict | None = None) -> dict:
    """The model folder's report: every target of one run against the original, on the same golden inputs.

    `targets` holds, per target of the run, (target name, its output folder, its report), or for a target that
    produced no artifact a ready row with `failed`, `status`, `exit_code` and `error` (pipeline.failed_row).
    """
    rows = []
    for entry in targets:
        if isinstance(entry, dict):
            rows.append({**entry, "passed": False})
            continue
        name, folder, report = entry
        parity = report["parity"]
        rows.append(
            {
                "target": name,
                "failed": False,
                "status": "runtime failed" if parity["error"] else "passed" if report["passed"] else "parity failed",
                "exit_code": 4 if parity["error"] else 0 if report["passed"] else 1,
                "folder": folder.relative_to(model_dir).as_posix(),
                "report": (folder / "report.json").relative_to(model_dir).as_posix(),
                "html": (folder / "report.html").relative_to(model_dir).as_posix(),
                "passed": report["passed"],
                "format": report["format"],
                "quantization": report["quantization"],
                "runtime": parity["runtime"],
                "size_bytes": report["artifact"]["size_bytes"],
                "tolerance": parity["tolerance"],
                "error": parity["error"],
                "outputs": [{k: v for k, v in output.items() if k != "error_histogram"} for output in parity["outputs"]],
                "golden_sha256": report["golden"]["sha256"],
            }
        )
    goldens = {row["golden_sha256"] for row in rows if not row["failed"]}
    made = [entry for entry in targets if not isinstance(entry, dict)]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": RUN_SUMMARY_KIND,
        "created_at": _now(),
        "passed": all(row["passed"] for row in rows),
        "exit_code": max((row["exit_code"] for row in rows), default=0),
        "model": model.to_json(),
        "same_golden_inputs": len(goldens) <= 1,
        "golden": made[0][2]["golden"] if made else golden,
        "targets": rows,
        "tools": tool_versions(),
    }


def _finite(value):
    """JSON has no NaN or Infinity: a non-finite figure becomes null (the violation text still names it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    write_text(path, json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a full disk or an interrupt: no half-written file stays behind
        raise
