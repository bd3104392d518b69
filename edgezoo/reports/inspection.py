"""`edgezoo inspect ARTIFACT`: what a person receiving a model file wants to know, on one screen (or as JSON).

Format, size, inputs and outputs (shapes, dtypes, quantisation), the metadata and labels the file carries, its ops
and, for TFLite, which delegate-free runtime (LiteRT, TensorFlow Lite Micro) has a kernel for each. Where the file
was made by edgezoo, the report.json beside it (trusted only when its artifact sha256 is this file's) adds the
target, the parity verdict and, for microcontroller targets, the tensor arena measured on TFLM; a model_data.h of
the same sha256 gives the arena too. The arena is read from there rather than stored in the metadata: it is measured
after the metadata is written (on the file that ships), and only for targets that run TFLM.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from edgezoo.formats.inspect import ArtifactInfo, TensorInfo, read

RUNTIME_NAMES = {"litert": "LiteRT", "tflm": "TFLM"}
SHOWN_LABELS = 10


def files_sha256(files) -> str:
    """The artifact's sha256 as edgezoo's reports give it: its files' bytes, in sorted path order."""
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def edgezoo_record(info: ArtifactInfo) -> dict | None:
    """What edgezoo recorded when it made this file: from report.json (or model_data.h) of the same sha256 beside it."""
    sha256 = files_sha256(info.files)
    for folder in (info.main.parent, info.main.parent.parent):
        report_path = folder / "report.json"
        if not report_path.is_file():
            continue
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            continue
        artifact = report.get("artifact") or {}
        if artifact.get("sha256") != sha256:
            continue
        parity = report.get("parity") or {}
        return {
            "report": str(report_path),
            "target": report.get("target"),
            "quantization": report.get("quantization"),
            "parity_passed": report.get("passed"),
            "runtime": parity.get("runtime"),
            "arena_bytes_measured": artifact.get("arena_bytes_measured"),
            "arena_bytes": artifact.get("arena_bytes"),
        }
    header = info.main.parent / "model_data.h"
    if header.is_file():
        text = header.read_text(errors="replace")
        if f"sha256 {sha256}" in text:
            measured = re.search(r"kTensorArenaMeasuredSize = (\d+);", text)
            size = re.search(r"kTensorArenaSize = (\d+);", text)
            return {"report": str(header), "target": None, "quantization": None, "parity_passed": None, "runtime": "tflm",
                    "arena_bytes_measured": int(measured.group(1)) if measured else None,
                    "arena_bytes": int(size.group(1)) if size else None}
    return None


def inspect(path) -> dict:
    info = read(path)
    data = info.to_json()
    data["sha256"] = files_sha256(info.files)
    data["made_by_edgezoo"] = edgezoo_record(info)
    return data


# --- one screen ------------------------------------------------------------------------------------


def _shape(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _quantization(tensor: dict) -> str:
    q = tensor.get("quantization")
    if not q:
        return ""
    if len(q["scale"]) == 1:
        return f", scale {q['scale'][0]:.6g} zero point {q['zero_point'][0]}"
    return f", per-channel scales ({len(q['scale'])}) along axis {q['axis']}"


def _tensor_lines(kind: str, tensors: list[dict], width: int) -> list[str]:
    return [f"  {kind:6} {t['name']:{width}}  {_shape(t['shape'])} {t['dtype']}{_quantization(t)}" for t in tensors]


def _listed(values, limit: int = SHOWN_LABELS) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def metadata_lines(metadata: dict | None) -> list[str]:
    """The metadata a file carries (any format, as edgezoo.formats.metadata reads it), indented for the CLI."""
    if not metadata:
        return ["  metadata: none (no labels or normalisation in the file)"]
    head = " ".join(part for part in (metadata.get("name"), f"v{metadata['version']}" if metadata.get("version") else None) if part)
    lines = [f"  metadata: {head or '(no name)'}" + (f" -- {metadata['description']}" if metadata.get("description") else "")]
    owners = [f"author {metadata['author']}" if metadata.get("author") else None, f"licence {metadata['license']}" if metadata.get("license") else None]
    if any(owners):
        lines.append("    " + "; ".join(o for o in owners if o))
    for tensor in metadata.get("inputs") or []:  # TFLite's own per-tensor metadata
        if tensor.get("normalization"):
            norm, value_range = tensor["normalization"], tensor.get("range") or {}
            lines.append(f"    {tensor['name']}: {tensor.get('content')}, {tensor.get('color_space', '-')}, (pixel - {norm['mean']}) / {norm['std']}"
                         + (f" -> {value_range.get('min')}..{value_range.get('max')}" if value_range else ""))
    for image in metadata.get("images") or []:  # the same facts as ONNX and TF.js carry them
        lines.append(f"    {image['name']}: image, {image['color_space']}, (pixel - {image['mean']}) / {image['std']} -> {image['min']}..{image['max']}")
    labels = metadata.get("labels")
    lines.append(f"    labels ({len(labels)}): {_listed(labels)}" if labels else "    labels: none")
    facts = metadata.get("edgezoo") or metadata
    if facts.get("source"):
        lines.append(f"    from {facts['source']} (sha256 {str(facts.get('source_sha256'))[:16]}...), {facts.get('converted_by', '')}, "
                     f"quantisation {facts.get('quantization', '?')}")
    return lines


def describe(data: dict) -> str:
    size = data["size_bytes"]
    lines = [f"{data['path']}: {data['format']}, {size:,} bytes ({size / 1024:.1f} KiB) in {len(data['files'])} file(s), "
             f"quantisation {data['quantization_detected']} (as the tensors show it)"]
    width = max((len(t["name"]) for t in data["inputs"] + data["outputs"]), default=4)
    lines += _tensor_lines("input", data["inputs"], width) + _tensor_lines("output", data["outputs"], width)
    lines += metadata_lines(data.get("metadata"))
    lines.append(f"  ops ({len(data['ops'])}): {', '.join(data['ops'])}")
    support = data.get("op_support")
    if support:
        parts = []
        for runtime, found in support.items():
            name = RUNTIME_NAMES.get(runtime, runtime)
            if found.get("missing") is None:
                parts.append(f"{name}: unknown ({found.get('note', '')})")
            else:
                parts.append(f"{name}: runs all {len(data['ops'])}" if not found["missing"] else f"{name}: lacks {', '.join(found['missing'])}")
        lines.append("  runtimes (no delegate): " + "; ".join(parts))
    if data.get("opset"):
        lines.append(f"  opset: {', '.join(f'{k} {v}' for k, v in data['opset'].items())}; producer {data.get('producer') or '?'}")
    record = data.get("made_by_edgezoo")
    if record is None:
        lines.append("  made by edgezoo: no report.json of this file beside it")
    else:
        verdict = {True: "passed", False: "FAILED", None: "?"}[record["parity_passed"]]
        lines.append(f"  made by edgezoo: {record['report']} (target {record['target'] or '?'}, parity {verdict} on {record['runtime'] or '?'})")
    if data["format"] == "tflite":
        measured = record and record.get("arena_bytes_measured")
        lines.append(f"  tensor arena: {measured:,} bytes measured on TFLM ({record['arena_bytes']:,} with the margin)" if measured
                     else "  tensor arena: not measured (edgezoo measures it for TFLM targets, e.g. --target microcontroller)")
    return "\n".join(lines)
