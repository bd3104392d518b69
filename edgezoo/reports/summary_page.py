"""report.html of a whole run: every target against the original on the same golden inputs, side by side."""

from __future__ import annotations

from html import escape
from pathlib import Path

from edgezoo.reports import plots
from edgezoo.reports.html import (MATRIX_METRICS, METRIC_LABELS, bytes_text, judged_cell, model_section, page, raw_json, tools_section, verdict_header)
from edgezoo.reports.json_report import write_text


def render_run_summary(summary: dict) -> str:
    model = summary["model"]
    targets = summary["targets"]
    golden = summary.get("golden") or {}
    same = summary.get("same_golden_inputs")
    subtitle = (
        f"{len(targets)} target(s) against the original on the same {golden.get('num_samples', '?')} golden inputs "
        f"(sha256 {str(golden.get('sha256', ''))[:12]}) · {summary.get('created_at', '')}"
    )
    body = [verdict_header(f"{model['name']}: parity matrix", summary["passed"], subtitle)]
    if not same:
        body.append("<div class=warn>The targets were checked on different golden inputs: compare their figures with care.</div>")
    body += ["<h2>Every artifact against the original</h2>", _matrix(targets), _drift_plots(targets)]
    body += ["<h2>Model</h2>", model_section(model), "<h2>Tools</h2>", tools_section(summary.get("tools") or {}), raw_json(summary)]
    return page(f"{model['name']}: parity matrix", body)


def _matrix(targets: list[dict]) -> str:
    outputs = list(dict.fromkeys(o["name"] for t in targets for o in t.get("outputs", [])))
    metrics = [m for m in MATRIX_METRICS if any(m in o for t in targets for o in t.get("outputs", []))]
    head = "<tr><th rowspan=2>target</th><th rowspan=2>verdict</th><th rowspan=2>format</th><th rowspan=2>quantisation</th>"
    head += "<th rowspan=2>runtime</th><th rowspan=2>size</th>"
    head += "".join(f"<th colspan={len(metrics)}>{escape(name)}</th>" for name in outputs) + "</tr><tr>"
    head += "".join(f"<th>{escape(METRIC_LABELS[m])}</th>" for _ in outputs for m in metrics) + "</tr>"
    rows = []
    width = len(outputs) * len(metrics)
    for target in targets:
        if target.get("failed"):
            rows.append(_failed_row(target, width))
            continue
        link = f"<a href='{escape(target['html'])}'>{escape(target['target'])}</a>"
        verdict = "<td class=ok>passed</td>" if target["passed"] else "<td class=bad>FAILED</td>"
        cells = [f"<th>{link}</th>", verdict]
        cells += [f"<td>{escape(str(target[k]))}</td>" for k in ("format", "quantization", "runtime")]
        cells.append(f"<td class=num>{escape(bytes_text(target['size_bytes']))}</td>")
        by_name = {o["name"]: o for o in target["outputs"]}
        for name in outputs:
            output = by_name.get(name, {})
            cells += [judged_cell(m, output.get(m), target.get("tolerance") or {}) for m in metrics]
        if target.get("error"):
            cells.append(f"<td class=bad>{escape(target['error'])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = "<p class=sub>Green: within that target's tolerance; red: outside it; white: not bounded by the target.</p>"
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _failed_row(target: dict, width: int) -> str:
    """A target that produced no artifact: its status, exit code and the reason, across the metric columns."""
    cells = [f"<th>{escape(target['target'])}</th>", f"<td class=bad>{escape(target['status'].upper())} (exit {target['exit_code']})</td>"]
    cells += [f"<td>{escape(str(target.get(k) or '-'))}</td>" for k in ("format", "quantization", "runtime")]
    cells.append("<td class=num>-</td>")
    cells.append(f"<td class=bad colspan={max(width, 1)}>{escape(target['error'])}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _drift_plots(targets: list[dict]) -> str:
    """Which format drifts: SNR of every target, per output (higher is closer to the original)."""
    outputs = list(dict.fromkeys(o["name"] for t in targets for o in t.get("outputs", [])))
    charts = []
    for name in outputs:
        items = []
        for target in targets:
            output = next((o for o in target.get("outputs", []) if o["name"] == name), None)
            if output is not None and output.get("snr_db") is not None:
                items.append((target["target"], output["snr_db"], not output["passed"]))
        if items:
            charts.append(plots.horizontal_bars(items, f"SNR against the original: {name}", " dB"))
    return "<div class=plots>" + "".join(charts) + "</div>" if charts else ""


def write_summary_html(folder: Path, summary: dict) -> Path:
    path = folder / "report.html"
    write_text(path, render_run_summary(summary))
    return path
