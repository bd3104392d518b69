"""The corpus matrix: every corpus model converted for every built-in target; and the measurements tolerances come from.

    .venv/bin/python scripts/corpus_matrix.py                    # docs/corpus-matrix.json and the matrix table in docs/corpus.md
    .venv/bin/python scripts/corpus_matrix.py --write-expected   # also rewrites the expected verdicts tests/test_corpus_matrix.py checks
    .venv/bin/python scripts/corpus_matrix.py --section before   # writes the table into the "before" section instead
    .venv/bin/python scripts/corpus_matrix.py --measure          # every quantisation on every runtime: docs/corpus-measurements.json
    .venv/bin/python scripts/corpus_matrix.py --models gesture-lstm --targets onnx phone   # a part (printed, nothing written)
    .venv/bin/python scripts/corpus_matrix.py --models pulse-gates --write-expected   # some models' cells replaced, the rest kept

The matrix converts through the public API (`edgezoo.convert`), one target at a time, calibrated on the model's
data.npz with about 40 inputs held out; each cell records its verdict (pass, parity-fail, refused: exit 3,
error: exit 2 or 4, with the error's first line), exit code, size and every metric of every output.

--measure converts each model for each quantisation x runtime through user profiles written to a temporary
folder (`extends` a built-in profile, its `quantization`, limits no output can miss, no float fallback), so the
figures come from the real pipeline with verdicts ignored; it re-runs each artifact on the held-out inputs for
the decision metrics the pipeline does not compute yet (agreement of thresholded sigmoid outputs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's edgezoo and tests, not an installed copy

import numpy as np  # noqa: E402

from tests import corpus  # noqa: E402

MATRIX_JSON = REPO / "docs" / "corpus-matrix.json"
MEASURE_JSON = REPO / "docs" / "corpus-measurements.json"

# (label, quantisation, runtime, built-in profile it extends, extra profile keys): every runtime that takes each quantisation.
MEASUREMENTS = (
    ("float32 litert", "float32", "litert", "phone", {}),
    ("float32 onnxruntime", "float32", "onnxruntime", "onnx", {}),
    ("float32 tfjs-node", "float32", "tfjs-node", "browser", {"runtime": "tfjs-node"}),
    ("float32 tfjs-browser", "float32", "tfjs-browser", "browser", {}),
    ("float16 litert", "float16", "litert", "phone", {}),
    ("float16 onnxruntime", "float16", "onnxruntime", "onnx", {}),
    ("float16 tfjs-node", "float16", "tfjs-node", "browser", {"runtime": "tfjs-node"}),
    ("float16 tfjs-browser", "float16", "tfjs-browser", "browser", {}),
    ("dynamic-int8 litert", "dynamic-int8", "litert", "phone", {}),
    ("dynamic-int8 tfjs-node", "dynamic-int8", "tfjs-node", "browser", {"runtime": "tfjs-node"}),
    ("int8 litert, float I/O", "int8", "litert", "phone", {"integer_io": False}),
    ("int8 litert, int8 I/O", "int8", "litert", "phone", {"integer_io": True}),
    ("int8 tflm", "int8", "tflm", "microcontroller", {}),
    ("int16x8 litert", "int16x8", "litert", "phone", {}),
)
# Limits no output can miss, for every limit a built-in profile may set: the measure mode ignores verdicts.
NO_LIMITS = {"max_abs_error": 1e30, "min_cosine": -1.0, "min_snr_db": -300.0, "min_top1_agreement": 0.0}


# --- running cells: one child process per model, so that a runtime that aborts the process costs one cell -----------


def run_job(job: dict, scratch: Path) -> dict:
    """One cell (a `job` of run_cells) in this process: its row, the Cell's fields plus the job's."""
    name, measurement = job["model"], job.get("measurement")
    cell, done = corpus.convert_cell(name, job["target"], scratch / "converted", **job.get("options", {}))
    row = {**job, **cell.to_json()}
    if measurement and done is not None and not cell.details.get("runtime_error"):
        kinds = {o["name"]: o["kind"] for o in corpus.corpus_model(name).meta["outputs"]}
        for output, figures in decision_metrics(name, done.artifact, done.parity.runtime, kinds).items():
            row["outputs"][output].update(figures)
        if done.artifact.format == "tflite":
            row["details"]["integer_weight_tensors"] = integer_weight_tensors(done.artifact.path)
    snr = f", worst SNR {cell.worst_snr_db:.1f} dB" if cell.worst_snr_db is not None else ""
    print(f"{name} | {measurement or job['target']}: {cell.verdict} (exit {cell.exit_code}){snr} in {cell.seconds:.1f} s"
          + (f"\n    {_one_line(cell.reason, 300)}" if cell.reason else ""), flush=True)
    return row


def _read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """(finished rows, keys started) from a child's rows file (one JSON object a line)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if "verdict" in line], [line["started"] for line in lines if "started" in line]


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(_finite(record)) + "\n")


def run_child(jobs_path: Path, rows_path: Path) -> int:
    """The child: every job of its file not yet in the rows file, each announced before it starts."""
    jobs = json.loads(jobs_path.read_text())
    finished = {row["key"] for row in _read_rows(rows_path)[0]}
    for job in jobs:
        if job["key"] not in finished:
            _append(rows_path, {"started": job["key"]})
            _append(rows_path, run_job(job, jobs_path.parent))
    return 0


def run_cells(jobs: list[dict], scratch: Path) -> list[dict]:
    """Every job (key, model, target, options, measurement), a child process per model. A child that dies (LiteRT
    and TFLM abort the process on some models) leaves its current cell as a `crash` row; a new child goes on."""
    rows = []
    for name in dict.fromkeys(job["model"] for job in jobs):
        model_jobs = [job for job in jobs if job["model"] == name]
        jobs_path, rows_path = scratch / f"{name}.jobs.json", scratch / f"{name}.rows.jsonl"
        jobs_path.write_text(json.dumps(model_jobs))
        while len(_read_rows(rows_path)[0]) < len(model_jobs):
            done = subprocess.run([sys.executable, __file__, "--child", str(jobs_path), str(rows_path)])
            if done.returncode == 0:
                continue
            finished, started = _read_rows(rows_path)
            unfinished = [key for key in started if key not in {row["key"] for row in finished}]
            if not unfinished:  # it died before any cell: a broken set-up, not a model
                raise SystemExit(f"the child process for {name} failed (exit {done.returncode}) before converting anything")
            crashed = next(job for job in model_jobs if job["key"] == unfinished[-1])
            died = f"signal {signal.Signals(-done.returncode).name}" if done.returncode < 0 else f"exit code {done.returncode}"
            cell = corpus.Cell(name, crashed["target"], "crash", 128 - done.returncode if done.returncode < 0 else done.returncode,
                               f"the process died ({died}) while converting or checking: no report, no exit code of edgezoo's own")
            print(f"{name} | {crashed.get('measurement') or crashed['target']}: crash ({died})", flush=True)
            _append(rows_path, {**crashed, **cell.to_json()})
        rows += _read_rows(rows_path)[0]
    return rows


def cell_of(row: dict) -> corpus.Cell:
    return corpus.Cell(**{f.name: row[f.name] for f in dataclasses.fields(corpus.Cell)})


# --- the matrix ----------------------------------------------------------------------------------------------


def matrix_jobs(models: list[str], targets: list[str] | None) -> list[dict]:
    """Each model for the targets given, else for its own columns (corpus.columns: the built-in targets, and phone-auto for some)."""
    return [{"key": f"{name} x {target}", "model": name, "target": target} for name in models for target in (targets or corpus.columns(name))]


def matrix_columns(cells: list[corpus.Cell]) -> list[str]:
    """The columns of these cells: the built-in targets first, then the extra columns, then anything else in order seen."""
    seen = list(dict.fromkeys(c.target for c in cells))
    known = [t for t in (*corpus.BUILTIN_TARGETS, *corpus.EXTRA_COLUMNS) if t in seen]
    return known + [t for t in seen if t not in known]


def merge_cells(kept: list[corpus.Cell], new: list[corpus.Cell]) -> list[corpus.Cell]:
    """The recorded cells with the models of `new` replaced by theirs, sorted by model (and each model's columns in order)."""
    models = {c.model for c in new}
    cells = [c for c in kept if c.model not in models] + new
    return sorted(cells, key=lambda c: c.model)


def _size(size: int | None) -> str:
    return "" if size is None else f"{size / 1024:.1f} KiB"


def matrix_table(cells: list[corpus.Cell], targets: list[str]) -> str:
    """Model x target: verdict, worst SNR, size; then the reason of every cell that did not pass."""
    by_cell = {(c.model, c.target): c for c in cells}
    models = list(dict.fromkeys(c.model for c in cells))
    lines = ["| model | " + " | ".join(targets) + " |", "| --- |" + " --- |" * len(targets)]
    for model in models:
        row = []
        for target in targets:
            cell = by_cell.get((model, target))
            if cell is None:  # a column this model is not converted for
                row.append("-")
                continue
            parts = [cell.verdict if cell.verdict == "pass" else f"**{cell.verdict}** ({cell.exit_code})"]
            if cell.worst_snr_db is not None:
                parts.append(f"{cell.worst_snr_db:.1f} dB")
            if cell.size_bytes is not None:
                parts.append(_size(cell.size_bytes))
            row.append(", ".join(parts))
        lines.append(f"| {model} | " + " | ".join(row) + " |")
    failures = [c for c in cells if c.verdict != "pass"]
    if failures:
        lines += ["", "Why the other cells did not pass (first line of the error, or the parity summary):", ""]
        lines += [f"- {c.model} x {c.target}: {_one_line(c.reason)}" for c in failures]
    return "\n".join(lines)


def _one_line(text: str | None, limit: int = 400) -> str:
    text = " ".join((text or "").split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the measurements ------------------------------------------------------------------------------------------


def write_profiles(folder: Path) -> dict[str, Path]:
    """One user profile per measurement: `extends` its built-in profile, with that quantisation and NO_LIMITS."""
    paths = {}
    for index, (label, quantization, _runtime, base, extra) in enumerate(MEASUREMENTS):
        lines = [f'extends = "{base}"', f'quantization = "{quantization}"']
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        lines += ["", f"[tolerances.{quantization}]"] + [f"{key} = {value!r}" for key, value in NO_LIMITS.items()]
        path = folder / f"m{index:02d}-{quantization}-{label.split()[1].strip(',')}.toml"
        path.write_text("\n".join(lines) + "\n")
        paths[label] = path
    return paths


def decision_metrics(name: str, artifact, runtime: str, kinds: dict[str, str]) -> dict[str, dict]:
    """The artifact re-run on the held-out inputs: agreement and IoU of thresholded sigmoid outputs, top-1 agreement of
    every softmax output, and max|err| to check that the re-run saw what the pipeline saw."""
    from edgezoo.formats import runner_for

    reference = corpus.reference_outputs(name)
    candidate = runner_for(runtime).run(artifact, corpus.heldout_inputs(name))
    found = {}
    for output, ref in reference.items():
        out = candidate[output].astype(np.float64)
        figures = {"rerun_max_abs_error": float(np.max(np.abs(out - ref)))}
        if kinds[output] == "sigmoid":
            figures["threshold_agreement"] = float(np.mean((ref > 0.5) == (out > 0.5)))
            # Agreement counts the many true negatives of a sparse map (onsets, masks); IoU counts only where either says yes.
            either = np.sum((ref > 0.5) | (out > 0.5))
            figures["threshold_iou"] = float(np.sum((ref > 0.5) & (out > 0.5)) / either) if either else 1.0
        if kinds[output] == "softmax":  # also where the model is no classifier (box-regressor's class scores)
            figures["top1_agreement"] = float(np.mean(np.argmax(ref, -1) == np.argmax(out, -1)))
        found[output] = figures
    return found


def integer_weight_tensors(path: Path) -> int:
    """How many constant tensors of a .tflite are int8: none in a dynamic-int8 model means TFLite kept every weight
    in float (it leaves weights of fewer than 1,024 elements alone), so the model measures float32, not dynamic-int8."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(path)).get_tensor_details()
    return sum(1 for d in details if d["dtype"] == np.int8 and d["quantization_parameters"]["scales"].size and "pseudo_q" in d["name"])


def measure_jobs(models: list[str], profiles: dict[str, Path]) -> list[dict]:
    return [{"key": f"{name} | {label}", "model": name, "target": str(profiles[label]), "options": {"auto_fallback": False},
             "measurement": label, "quantization": quantization, "runtime": runtime}
            for name in models for label, quantization, runtime, _base, _extra in MEASUREMENTS]


def _worst(row: dict, metric: str, worst=min):
    values = [o[metric] for o in row["outputs"].values() if o.get(metric) is not None and math.isfinite(o[metric])]
    return worst(values) if values else None


# Columns of the summary: (heading, metric, worst of a model's outputs, worse of two models, shown as).
SUMMARY_COLUMNS = (
    ("SNR dB", "snr_db", min, min, "{:.1f}".format),
    ("max abs err / range", "max_abs_error_over_range", max, max, "{:.2e}".format),
    ("1 - cosine", "cosine", min, min, lambda v: f"{1.0 - v:.1e}"),
    ("top-1 (softmax outputs)", "top1_agreement", min, min, "{:.3f}".format),
    ("thresholded sigmoid agreement", "threshold_agreement", min, min, "{:.4f}".format),
    ("thresholded sigmoid IoU", "threshold_iou", min, min, "{:.4f}".format),
)


def _why_not(row: dict) -> str | None:
    """Why a row gives no figures, or None when it does."""
    if not row["outputs"] or row["details"].get("runtime_error"):
        return f"{row['verdict']} ({row['exit_code']}): {_one_line(row['reason'], 160)}"
    if row["non_finite"]:
        return f"converted and ran, but output(s) hold NaN or Inf: {_one_line(row['reason'], 160)}"
    if row["quantization"] == "dynamic-int8" and row["details"].get("integer_weight_tensors") == 0:
        return "TFLite kept every weight in float (it leaves weights of fewer than 1,024 elements alone): a float32 model"
    return None


def summary(rows: list[dict]) -> list[dict]:
    """Per measurement: median and worst over the models of each model's worst output, and which models did not run."""
    found = []
    for label, *_ in MEASUREMENTS:
        measured = [r for r in rows if r["measurement"] == label]
        ran = [r for r in measured if _why_not(r) is None]
        entry = {"measurement": label, "models_run": len(ran), "models": len(measured),
                 "not_run": {r["model"]: _why_not(r) for r in measured if r not in ran}}
        for _heading, metric, worst_output, worst_model, _show in SUMMARY_COLUMNS:
            per_model = {r["model"]: _worst(r, metric, worst_output) for r in ran}
            values = [v for v in per_model.values() if v is not None]
            entry[metric] = {"median": statistics.median(values) if values else None,
                             "worst": worst_model(values) if values else None,
                             "worst_model": next((m for m, v in per_model.items() if values and v == worst_model(values)), None),
                             "per_model": per_model}
        found.append(entry)
    return found


def summary_table(entries: list[dict]) -> str:
    headings = [c[0] for c in SUMMARY_COLUMNS]
    lines = ["| quantisation, runtime | models run | " + " | ".join(f"{h}: median / worst" for h in headings) + " |",
             "| --- | --- |" + " --- |" * len(headings)]
    for entry in entries:
        cells = []
        for _heading, metric, _wo, _wm, show in SUMMARY_COLUMNS:
            figures = entry[metric]
            cells.append("-" if figures["median"] is None else f"{show(figures['median'])} / {show(figures['worst'])} ({figures['worst_model']})")
        lines.append(f"| {entry['measurement']} | {entry['models_run']}/{entry['models']} | " + " | ".join(cells) + " |")
    for heading, metric, *_rest, show in (SUMMARY_COLUMNS[0], SUMMARY_COLUMNS[1]):
        models = sorted({m for e in entries for m in (*e[metric]["per_model"], *e["not_run"])})
        lines += ["", f"Each model's worst output, {heading} (- where it gave no figures):", "",
                  "| quantisation, runtime | " + " | ".join(models) + " |", "| --- |" + " --- |" * len(models)]
        for entry in entries:
            values = entry[metric]["per_model"]
            lines.append(f"| {entry['measurement']} | " + " | ".join(show(values[m]) if values.get(m) is not None else "-" for m in models) + " |")
    not_run = [(e["measurement"], model, why) for e in entries for model, why in e["not_run"].items()]
    if not_run:
        lines += ["", "Not measured (the conversion or the runtime failed, the outputs are not finite, or nothing was quantised):", ""]
        lines += [f"- {label}, {model}: {why}" for label, model, why in not_run]
    return "\n".join(lines)


# --- output ----------------------------------------------------------------------------------------------------


def provenance() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    from edgezoo.reports.json_report import tool_versions

    return {"commit": git("rev-parse", "--short", "HEAD"), "edgezoo_changed_since_commit": bool(git("status", "--porcelain", "edgezoo")),
            "heldout_per_model": corpus.HELDOUT, "tools": tool_versions()}


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(_finite(data), indent=1, allow_nan=False) + "\n")


def update_doc(**sections: str) -> None:
    text = corpus.CORPUS_DOC.read_text()
    for marker, content in sections.items():
        text = corpus.rewrite_section(text, marker.replace("_", "-"), content)
    corpus.CORPUS_DOC.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="corpus models (default: all); with a part, nothing is written")
    parser.add_argument("--targets", nargs="+", help=f"targets or extra columns ({', '.join(corpus.EXTRA_COLUMNS)}); default: each "
                        f"model's columns, {' '.join(corpus.BUILTIN_TARGETS)} and, for {', '.join(corpus.AUTO_MODELS)}, the extra ones")
    parser.add_argument("--measure", action="store_true", help="every quantisation x runtime, verdicts ignored")
    parser.add_argument("--write-expected", action="store_true",
                        help="rewrite the expected-verdict table from this run; with --models (and no --targets), those models' "
                             "cells replace theirs in docs/corpus-matrix.json and both tables, the other models' are kept")
    parser.add_argument("--section", default="matrix", choices=("matrix", "before"), help="the docs/corpus.md section for the table")
    parser.add_argument("--tables-only", action="store_true", help="with --measure: the tables again from docs/corpus-measurements.json")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("JOBS", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(*args.child)
    models, targets = args.models or corpus.names(), args.targets
    whole = args.models is None and args.targets is None
    partial = args.write_expected and args.models is not None and args.targets is None and not args.measure
    if args.write_expected and not (whole or partial):
        parser.error("--write-expected takes every target of the models it runs: leave out --targets")
    from edgezoo import _tf

    _tf.configure_environment()
    with tempfile.TemporaryDirectory(prefix="corpus-matrix-") as scratch:
        if args.measure:
            if args.tables_only:
                rows = json.loads(MEASURE_JSON.read_text())["rows"]
            else:
                rows = run_cells(measure_jobs(models, write_profiles(Path(scratch))), Path(scratch))
            entries = summary(rows)
            table = summary_table(entries)
            print("\n" + table)
            if whole:
                write_json(MEASURE_JSON, {**provenance(), "measurements": [m[0] for m in MEASUREMENTS], "summary": entries, "rows": rows})
                update_doc(**{f"{args.section}_measure": table})
            return 0
        cells = [cell_of(row) for row in run_cells(matrix_jobs(models, targets), Path(scratch))]
    print("\n" + matrix_table(cells, matrix_columns(cells)))
    path = MATRIX_JSON if args.section == "matrix" else MATRIX_JSON.with_name("corpus-matrix-before.json")
    if partial:  # the other models' cells as last recorded, and a note of which models this run replaced
        recorded = json.loads(path.read_text())
        updates = [*recorded.get("partial_updates", []), {"models": sorted(set(models)), **provenance()}]
        cells = merge_cells([cell_of(c) for c in recorded["cells"]], cells)
        recorded = {**recorded, "partial_updates": updates}
    elif whole:
        recorded = provenance()
    else:
        return 0
    columns = matrix_columns(cells)
    write_json(path, {**recorded, "targets": columns, "cells": [c.to_json() for c in cells]})
    update_doc(**{args.section: matrix_table(cells, columns)}, **({"expected": corpus.expected_table(cells)} if args.write_expected else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
