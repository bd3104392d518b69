"""OUT/build-report.json and OUT/build-report.html: every cell of a build with its verdict, size, SNR, latency where
benched, time and peak memory; failed cells with their reason. Schema: edgezoo/reports/schemas/build-report.schema.json.

The page is self-contained like the other reports (inline style); a few lines of inline script sort the table by the
column clicked, and without script the table reads in matrix order.
"""

from __future__ import annotations

import hashlib
import math
from html import escape
from pathlib import Path

from edgezoo.reports.json_report import BUILD_REPORT_KIND, SCHEMA_VERSION, _now, tool_versions, write_json, write_text

STATES = ("built", "skipped", "failed", "not run")


def cell_row(cell, out_dir: Path) -> dict:
    report = cell.report
    row = {"cell": cell.name, "model": cell.model, "source": cell.source, "target": cell.target, "variant": cell.variant,
           "folder": (Path(cell.model) / cell.folder).as_posix(), "state": cell.state, "status": cell.status,
           "exit_code": cell.exit_code, "passed": cell.exit_code == 0, "key": cell.key, "error": cell.error,
           "format": None, "quantization": None, "runtime": None, "size_bytes": None, "min_snr_db": None, "top1_agreement": None,
           "latency_ms": None, "seconds": cell.seconds, "peak_rss_bytes": cell.peak_rss_bytes, "worker": cell.worker}
    if report is not None:
        outputs = report["parity"]["outputs"]
        snrs = [o.get("snr_db") for o in outputs if isinstance(o.get("snr_db"), (int, float)) and math.isfinite(o["snr_db"])]
        top1 = [o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None]
        row.update(format=report["format"], quantization=report["quantization"], runtime=report["parity"]["runtime"],
                   size_bytes=report["artifact"]["size_bytes"], min_snr_db=min(snrs) if snrs else None,
                   top1_agreement=min(top1) if top1 else None, latency_ms=(report.get("latency") or {}).get("median_ms"),
                   report=(Path(cell.model) / cell.folder / "report.json").as_posix())
        if report["parity"]["error"]:
            row["error"] = report["parity"]["error"]
    return row


def write_build_report(result, matrix, options) -> None:
    out = Path(result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [cell_row(cell, out) for cell in result.cells]
    counts = {state.replace(" ", "_"): sum(r["state"] == state for r in rows) for state in STATES}
    counts["total"] = len(rows)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "kind": BUILD_REPORT_KIND,
        "created_at": _now(),
        "passed": result.passed,
        "exit_code": result.exit_code,
        "matrix": str(matrix.path) if matrix.path else None,
        "matrix_sha256": hashlib.sha256(matrix.path.read_bytes()).hexdigest() if matrix.path else None,
        "executor": options.executor,
        "seconds": result.seconds,
        "counts": counts,
        "cells": rows,
        "tools": tool_versions(),
    }
    result.summary = summary
    result.report_path, result.html_path = out / "build-report.json", out / "build-report.html"
    write_json(result.report_path, summary)
    write_text(result.html_path, render(summary))


COLUMNS = (("cell", "cell"), ("state", "state"), ("status", "verdict"), ("exit_code", "exit"), ("quantization", "quantisation"),
           ("runtime", "runtime"), ("size_bytes", "size (KiB)"), ("min_snr_db", "SNR dB (worst output)"), ("top1_agreement", "top-1 agree"),
           ("latency_ms", "latency ms"), ("seconds", "job s"), ("peak_rss_bytes", "peak MiB"), ("error", "reason"))

SORT_SCRIPT = """
document.querySelectorAll('th[data-col]').forEach(function(th){th.addEventListener('click',function(){
 var table=th.closest('table'),body=table.tBodies[0],col=+th.dataset.col,down=th.dataset.dir!=='asc';
 th.dataset.dir=down?'asc':'desc';
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=a.cells[col].dataset.v,y=b.cells[col].dataset.v,nx=parseFloat(x),ny=parseFloat(y);
  var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));return down?c:-c;});
 rows.forEach(function(r){body.appendChild(r);});});});
"""


def _shown(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "size_bytes":
        return f"{value / 1024:.1f}"
    if key == "peak_rss_bytes":
        return f"{value / (1 << 20):.0f}"
    if key == "top1_agreement":
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}" if key in ("min_snr_db", "seconds") else f"{value:.3g}"
    return str(value)


def render(summary: dict) -> str:
    from edgezoo.reports.html import STYLE

    head = "".join(f"<th data-col={i} title='click to sort'>{escape(label)}</th>" for i, (_, label) in enumerate(COLUMNS))
    body = []
    for row in summary["cells"]:
        css = "ok" if row["passed"] else "bad"
        cells = []
        for key, _ in COLUMNS:
            value = row[key]
            text = _shown(key, value)
            if key == "cell" and row.get("report"):
                shown = f"<a href='{escape(row['report'].replace('report.json', 'report.html'))}'>{escape(text)}</a>"
            else:
                shown = escape(text)
            klass = f" class={css}" if key == "status" else " class=num" if isinstance(value, (int, float)) else ""
            cells.append(f"<td{klass} data-v='{escape('' if value is None else str(value))}'>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    counts = summary["counts"]
    verdict = "<span class='verdict pass'>PASSED</span>" if summary["passed"] else "<span class='verdict fail'>FAILED</span>"
    subtitle = (f"{counts['total']} cells: {counts['built']} built, {counts['skipped']} skipped (intact), {counts['failed']} failed, "
                f"{counts['not_run']} not run; exit {summary['exit_code']}; {summary['seconds']:.1f} s on the {summary['executor']} executor")
    return ("<!doctype html><html><head><meta charset=utf-8><title>edgezoo build</title>"
            f"<style>{STYLE}</style></head><body><main><h1>{verdict}edgezoo build</h1><div class=sub>{escape(subtitle)}</div>"
            f"<div class=sub>matrix: {escape(str(summary['matrix']))}; {escape(summary['created_at'])}</div>"
            f"<h2>Cells</h2><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            "<footer>Click a column to sort. Latency is shown only for cells that were benched. Each cell's report.json and "
            f"report.html are in its folder.</footer></main><script>{SORT_SCRIPT}</script></body></html>")
