"""The quantisation figures of docs/quantization.md, measured on the corpus (tests/corpus/), one model per child process.

For each model: plain int8 on the phone (float I/O), the same after the float fallback (size, SNR, layers in float),
what `--quantize auto` keeps on the phone, and int8 / dynamic-int8 ONNX against float32 ONNX (size, SNR), each through
edgezoo.convert with the model's data.npz as calibration (about 40 held out). Prints a markdown table and writes
docs/quantization-figures.json.

    .venv/bin/python scripts/quantization_figures.py                 # every corpus model
    .venv/bin/python scripts/quantization_figures.py audio-convspec  # one
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELLS = (("phone", "int8"), ("phone", "auto"), ("onnx", "float32"), ("onnx", "int8"), ("onnx", "dynamic-int8"))


def measure(name: str) -> dict:
    sys.path.insert(0, str(REPO))
    from tests import corpus

    figures = {"model": name}
    with tempfile.TemporaryDirectory() as out:
        for target, quantize in CELLS:
            cell, done = corpus.convert_cell(name, target, Path(out) / f"{target}-{quantize}", quantize=quantize)
            row = {"verdict": cell.verdict, "size_bytes": cell.size_bytes, "snr_db": cell.worst_snr_db, "seconds": round(cell.seconds, 1),
                   "reason": cell.reason}
            report = done.report if done is not None else {}
            if "float_fallback" in report:
                fallback = report["float_fallback"]
                row["plain"] = fallback.get("plain")
                row["fallback"] = {"outcome": fallback["outcome"], "steps": len(fallback["steps"]), "float_end_count": fallback.get("float_end_count"),
                                   "float_ops": (report.get("precision") or {}).get("ops_by_precision", {}).get("float32"),
                                   "kept_float": fallback.get("kept_float")}
            if "quantization_trace" in report:
                row["shares"] = report["quantization_trace"]["shares"]
            if "auto_quantization" in report:
                auto = report["auto_quantization"]
                row["auto"] = {"chosen": auto["chosen"], "candidates": [(c["candidate"], c["size_bytes"], c["snr_db"], c["verdict"]) for c in auto["candidates"]]}
            figures[f"{target} {quantize}"] = row
    return figures


def _db(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _b(value) -> str:
    return "-" if value is None else f"{value:,}"


def table(rows: list[dict]) -> str:
    lines = ["| model | plain int8 (phone) | after fallback: bytes, SNR, ops in float | auto chose | ONNX float32 | ONNX int8 | ONNX dynamic-int8 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        int8, auto = r["phone int8"], r["phone auto"]
        plain = int8.get("plain") or {}
        fallback = int8.get("fallback") or {}
        after = ("not needed" if fallback.get("outcome") == "not needed" else
                 f"{fallback.get('outcome')}: {_b(int8['size_bytes'])} B, {_db(int8['snr_db'])} dB, {fallback.get('float_ops')} float ops "
                 f"({fallback.get('steps')} steps of 0..{fallback.get('float_end_count')})" if int8["size_bytes"] else int8["verdict"])
        chose = (auto.get("auto") or {}).get("chosen") or auto["verdict"]
        onnx = [r[f"onnx {q}"] for q in ("float32", "int8", "dynamic-int8")]
        lines.append(f"| {r['model']} | {_db(plain.get('snr_db'))} dB, {_b(plain.get('size_bytes'))} B | {after} | "
                     f"{chose}: {_b(auto['size_bytes'])} B, {_db(auto['snr_db'])} dB | "
                     + " | ".join(f"{c['verdict']}: {_b(c['size_bytes'])} B, {_db(c['snr_db'])} dB" for c in onnx) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--one":
        print(json.dumps(measure(argv[1])))
        return 0
    sys.path.insert(0, str(REPO))
    from tests import corpus

    names = argv or corpus.names()
    rows = []
    for name in names:
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)
    if not argv:
        (REPO / "docs" / "quantization-figures.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
