"""report.html: the report.json of a target (or of a whole run) as one self-contained page.

Everything is inline (style, SVG plots, no scripts, no external assets), so the page opens offline,
from a device's file system or an e-mail attachment, and shows the same thing everywhere.
Pages are rendered from the report dictionaries alone.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from edgezoo.reports.json_report import write_text
from edgezoo.reports import plots

METRIC_ORDER = (
    "snr_db", "cosine", "relative_l2_error", "max_error_over_range", "top1_agreement", "top5_agreement", "decision_agreement",
    "max_abs_error", "mean_abs_error", "rmse", "psnr_db",
)
METRIC_LABELS = {
    "max_abs_error": "max |error|",
    "mean_abs_error": "mean |error|",
    "rmse": "RMSE",
    "relative_l2_error": "relative L2",
    "cosine": "cosine",
    "snr_db": "SNR dB",
    "psnr_db": "PSNR dB",
    "top1_agreement": "top-1 agree",
    "top5_agreement": "top-5 agree",
    "max_error_over_range": "max |error| / range",
    "decision_agreement": "decisions agree",
}
MATRIX_METRICS = ("snr_db", "cosine", "max_error_over_range", "top1_agreement", "decision_agreement", "max_abs_error")
NOT_METRICS = {"name", "kind", "passed", "violations", "error_histogram"}
LAYER_METRICS = ("relative_rmse", "rmse", "error", "mean_abs_error", "max_abs_error")  # per-layer error, preferred first

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:1120px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:24px;margin:6px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccd;padding-bottom:4px}
.sub{color:#555;font-size:14px}
.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:bold;font-size:18px;margin-right:10px}
.pass{background:#1e8449}.fail{background:#c0392b}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 16px;min-width:130px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0}
th,td{border:1px solid #dde;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.ok{background:#e3f4e8}td.bad{background:#f9dcd8;font-weight:bold}
.limit{font-weight:normal;color:#666;font-size:11px;display:block}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{background:#fff;border:1px solid #dde;border-radius:6px}
.warn{background:#fff4d6;border:1px solid #e0c060;padding:6px 10px;border-radius:4px;margin:6px 0}
code,pre{font-family:"DejaVu Sans Mono",monospace;font-size:12px}pre{background:#fff;border:1px solid #dde;padding:8px;overflow:auto}
.ops span{display:inline-block;background:#e8ecf3;border-radius:3px;padding:1px 6px;margin:2px;font-size:12px}
footer{color:#777;font-size:12px;margin-top:30px}
"""


# --- one target ---------------------------------------------------------------------------------


def render_target_report(report: dict) -> str:
    parity = report["parity"]
    artifact = report["artifact"]
    title = f"{report['model']['name']} → {report['target']}"
    body = [
        _verdict_header(title, report["passed"], f"{report['format']} · {report['quantization']} · checked on {parity['runtime']} "
                        f"over {parity['num_samples']} held-out inputs · {report.get('created_at', '')}"),
        _cards(report),
        "<h2>Parity with the original</h2>",
        _parity_section(parity),
        _per_layer_section(report),
        "<h2>Artifact</h2>",
        _artifact_section(artifact),
        _optional_section("Footprint on the device", report.get("footprint")),
        _optional_section("Pruning", report.get("pruning")),
        _validated_section(report.get("validated")),
        _device_check_section(report.get("device_check")),
        "<h2>Calibration and validation data</h2>",
        _calibration_section(report.get("calibration") or {}),
        "<h2>Model</h2>",
        _model_section(report["model"]),
        "<h2>Target profile</h2>",
        _key_values({k: v for k, v in report.get("target_profile", {}).items() if k != "tolerances"}),
        "<h2>Tools</h2>",
        _tools_section(report.get("tools") or {}),
        _raw_json(report),
    ]
    return _page(title, body)


def _verdict_header(title: str, passed: bool, subtitle: str) -> str:
    verdict = '<span class="verdict pass">PASSED</span>' if passed else '<span class="verdict fail">FAILED</span>'
    return f"<h1>{verdict}{escape(title)}</h1><div class=sub>{escape(subtitle)}</div>"


def _cards(report: dict) -> str:
    artifact = report["artifact"]
    footprint = report.get("footprint") or {}
    cards = [("model size", _bytes(artifact.get("size_bytes"))), ("ops", str(len(artifact.get("ops") or [])))]
    if footprint.get("arena_bytes") is not None:
        cards.append(("tensor arena", _bytes(footprint["arena_bytes"])))
    if footprint.get("parameter_count") is not None:
        cards.append(("parameters", f"{footprint['parameter_count']:,}"))
    if footprint.get("macs") is not None:
        cards.append(("MACs per sample", _count(footprint["macs"])))
    cards.append(("golden inputs", str((report.get("golden") or {}).get("num_samples", "–"))))
    outputs = report["parity"]["outputs"]
    worst_snr = min((o["snr_db"] for o in outputs if o.get("snr_db") is not None), default=None)
    if worst_snr is not None:
        cards.append(("worst SNR", f"{worst_snr:.1f} dB"))
    worst_top1 = min((o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None), default=None)
    if worst_top1 is not None:
        cards.append(("top-1 agreement", f"{100 * worst_top1:.1f}%"))
    return "<div class=cards>" + "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards) + "</div>"


def _parity_section(parity: dict) -> str:
    parts = []
    if parity.get("error"):
        parts.append(f"<div class=warn>The runtime failed: {escape(parity['error'])}</div>")
    if parity["outputs"]:
        parts.append(_metrics_table(parity["outputs"], parity.get("tolerance") or {}))
        plots_html = [
            plots.error_histogram(o["error_histogram"], f"error histogram: {o['name']}") for o in parity["outputs"] if o.get("error_histogram")
        ]
        if plots_html:
            parts.append("<div class=plots>" + "".join(plots_html) + "</div>")
    return "".join(parts)


def _metric_names(outputs: list[dict]) -> list[str]:
    present = {key for o in outputs for key, value in o.items() if key not in NOT_METRICS}
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))


def _limit(metric: str, tolerance: dict) -> tuple[str, float] | None:
    """The tolerance limit that bounds a metric (targets.profile.LIMITS), as (direction sign, bound)."""
    from edgezoo.targets.profile import LIMITS

    for limit, (bounded, direction, _) in LIMITS.items():
        if bounded == metric and tolerance.get(limit) is not None:
            return ("≥" if direction == "min" else "≤"), tolerance[limit]
    return None


def _judged_cell(metric: str, value, tolerance: dict) -> str:
    limit = _limit(metric, tolerance)
    css = "num"
    if limit is not None and value is not None:
        within = value >= limit[1] if limit[0] == "≥" else value <= limit[1]
        css += " ok" if within else " bad"
    elif limit is not None:
        css += " bad"  # a bounded metric that could not be measured (NaN): not a pass
    return f"<td class='{css}'>{escape(_metric_value(metric, value))}</td>"


def _metrics_table(outputs: list[dict], tolerance: dict) -> str:
    names = _metric_names(outputs)
    head = "".join(
        f"<th>{escape(METRIC_LABELS.get(m, m))}" + (f"<span class=limit>{limit[0]} {_metric_value(m, limit[1])}</span>" if (limit := _limit(m, tolerance)) else "") + "</th>"
        for m in names
    )
    rows = []
    for output in outputs:
        cells = "".join(_judged_cell(m, output.get(m), tolerance) for m in names)
        verdict = "ok" if output["passed"] else "bad"
        problems = "; ".join(output.get("violations") or []) or "within tolerance"
        kind = f"<span class=limit>{escape(output['kind'])}</span>" if output.get("kind") else ""
        rows.append(f"<tr><th>{escape(output['name'])}{kind}</th>{cells}<td class={verdict}>{escape(problems)}</td></tr>")
    return f"<table><tr><th>output</th>{head}<th>verdict</th></tr>{''.join(rows)}</table>"


def _per_layer_section(report: dict) -> str:
    layers = per_layer_errors(report)
    if not layers:
        return ""
    shown = layers[:25]
    fallback = report.get("float_fallback") or {}
    kept = set(fallback.get("kept_float") or [])
    items = [(layer["layer"], layer["value"], layer["layer"] in kept) for layer in shown]
    metric = shown[0]["metric"]
    note = f"<p class=sub>The {len(shown)} worst of {len(layers)} layers by {escape(metric)}, worst first"
    note += "; in red, the layers kept in float.</p>" if kept else ".</p>"
    message = ""
    if fallback.get("message"):  # a plain line when nothing had to move, a highlighted one when something did
        style = "sub" if fallback.get("outcome") == "not needed" else "warn"
        message = f"<div class={style}>Float fallback: {escape(fallback['message'])}</div>"
    chart = plots.horizontal_bars(items, f"per-layer {metric}")
    return f"<h2>Per-layer quantisation error</h2>{message}{note}<div class=plots>{chart}</div>"


def per_layer_errors(report: dict) -> list[dict]:
    """Per-layer quantisation error rows ({layer, metric, value}), worst first, from wherever the report holds them."""
    section = report.get("quantization_debug") or report.get("per_layer_error")
    rows = section.get("layers") if isinstance(section, dict) else section
    if not rows:
        return []
    found = []
    for row in rows:
        metric = next((k for k in LAYER_METRICS if isinstance(row.get(k), (int, float))), None)
        if metric is not None:
            found.append({"layer": str(row.get("layer") or row.get("name")), "metric": metric, "value": float(row[metric])})
    return sorted(found, key=lambda r: -r["value"])


def _artifact_section(artifact: dict) -> str:
    main = {"file": artifact.get("path"), "size": _bytes(artifact.get("size_bytes")), "sha256": artifact.get("sha256")}
    extra = {k: v for k, v in artifact.items() if k not in {"path", "size_bytes", "sha256", "ops", "files"}}
    files = artifact.get("files") or []
    ops = artifact.get("ops") or []
    ops_html = "<div class=ops>" + "".join(f"<span>{escape(op)}</span>" for op in ops) + "</div>" if ops else "<p>no op list</p>"
    return (
        _key_values({**main, "files": ", ".join(files), **extra})
        + f"<h3>Ops used ({len(ops)})</h3>{ops_html}"
    )


def _validated_section(validated: dict | None) -> str:
    """edgezoo validate: the artifact as given, and how each of its tensors was matched to the original's."""
    if not validated:
        return ""
    general = {k: v for k, v in validated.items() if k not in {"inputs", "outputs", "matching", "matching_uncertain"}}
    parts = ["<h2>Made by another tool, validated by edgezoo</h2>", _key_values(general)]
    matching = validated.get("matching")
    if not matching:  # a report written before tensors were matched by values
        return "".join(parts) + _key_values({"inputs": validated.get("inputs"), "outputs": validated.get("outputs")})
    if validated.get("matching_uncertain"):
        parts.append("<div class=warn>UNCERTAIN MATCH: not every tensor was matched with certainty (in red below: matched by "
                     "values whose best alternative is less than twice as far from the original, or left undecided because the "
                     "artifact did not run); the verdict may rest on a wrong match. Name them with --input-map / --output-map.</div>")
    head = "<tr><th></th><th>original</th><th>artifact's tensor</th><th>matched</th><th>error</th><th>best alternative</th><th>margin</th></tr>"
    rows = []
    for kind, matches in matching.items():
        for name, match in matches.items():
            by_values = match.get("how") == "matched by values"
            alternative = f"{match['alternative']} ({_plain(match['alternative_error'])})" if by_values else "–"
            margin = f"{match['margin']:.3g}×" if by_values else "–"
            css = "ok" if match.get("certain") else "bad"
            rows.append(f"<tr><th>{escape(kind[:-1])}</th><td>{escape(name)}</td><td>{escape(match['tensor'])}</td>"
                        f"<td class={css}>{escape(match['how'] + ('' if match.get('certain') else ', UNCERTAIN'))}</td><td class=num>{escape(_plain(match.get('error')))}</td>"
                        f"<td>{escape(alternative)}</td><td class=num>{escape(margin)}</td></tr>")
    note = ("<p class=sub>By values: the artifact ran on the held-out inputs and the assignment of same-shaped tensors with the "
            "least total relative L2 error was kept. Error: an output's own relative L2 error; an input's, the total over the outputs. "
            "Best alternative: the tensor the best other assignment gives it, and that assignment's total error; margin: how many "
            "times worse it is.</p>")
    return "".join(parts) + f"<table>{head}{''.join(rows)}</table>" + note


def _device_check_section(device_check: dict | None) -> str:
    if not device_check:
        return ""
    commands = "".join(f"<li><code>{escape(command)}</code></li>" for command in device_check.get("commands") or [])
    not_checked = device_check.get("not_checked") or []
    return (
        "<h2>On-device check</h2>"
        f"<p>Copy the artifact and <code>{escape(device_check['folder'])}/</code> to the device; the check runs "
        f"{device_check['num_samples']} golden inputs and compares the outputs with the original's, within this target's "
        f"tolerances:</p><ul>{commands}</ul>"
        + (f"<div class=warn>Not measured on the device: {escape(', '.join(not_checked))}</div>" if not_checked else "")
        + _key_values({"files": ", ".join(device_check.get("files") or [])})
    )


def _optional_section(title: str, values: dict | None) -> str:
    return f"<h2>{escape(title)}</h2>" + _key_values(values) if values else ""


def _calibration_section(calibration: dict) -> str:
    parts = [f"<div class=warn>{escape(w)}</div>" for w in calibration.get("warnings") or []]
    general = {k: v for k, v in calibration.items() if k not in {"inputs", "warnings"}}
    parts.append(_key_values(general))
    inputs = calibration.get("inputs") or {}
    if inputs:
        columns = sorted({key for stats in inputs.values() for key in stats})
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        rows = "".join(
            f"<tr><th>{escape(name)}</th>" + "".join(f"<td class=num>{escape(_plain(stats.get(c)))}</td>" for c in columns) + "</tr>"
            for name, stats in inputs.items()
        )
        parts.append(f"<table><tr><th>input</th>{head}</tr>{rows}</table>")
    return "".join(parts)


def _model_section(model: dict) -> str:
    specs = lambda items: ", ".join(f"{s['name']} {s['dtype']}{s['shape']}" for s in items)  # noqa: E731
    shown = {k: v for k, v in model.items() if k not in {"inputs", "outputs", "preprocessing"}}
    shown["inputs"] = specs(model.get("inputs") or [])
    shown["outputs"] = specs(model.get("outputs") or [])
    shown["preprocessing"] = (model.get("preprocessing") or {}).get("description")
    return _key_values(shown)


def _tools_section(tools: dict) -> str:
    return _key_values({name: version or "not installed" for name, version in tools.items()})


# --- a whole run: the parity matrix --------------------------------------------------------------


def render_run_summary(summary: dict) -> str:
    model = summary["model"]
    targets = summary["targets"]
    golden = summary.get("golden") or {}
    same = summary.get("same_golden_inputs")
    subtitle = (
        f"{len(targets)} target(s) against the original on the same {golden.get('num_samples', '?')} golden inputs "
        f"(sha256 {str(golden.get('sha256', ''))[:12]}) · {summary.get('created_at', '')}"
    )
    body = [_verdict_header(f"{model['name']}: parity matrix", summary["passed"], subtitle)]
    if not same:
        body.append("<div class=warn>The targets were checked on different golden inputs: compare their figures with care.</div>")
    body += ["<h2>Every artifact against the original</h2>", _matrix(targets), _drift_plots(targets)]
    body += ["<h2>Model</h2>", _model_section(model), "<h2>Tools</h2>", _tools_section(summary.get("tools") or {}), _raw_json(summary)]
    return _page(f"{model['name']}: parity matrix", body)


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
        cells.append(f"<td class=num>{escape(_bytes(target['size_bytes']))}</td>")
        by_name = {o["name"]: o for o in target["outputs"]}
        for name in outputs:
            output = by_name.get(name, {})
            cells += [_judged_cell(m, output.get(m), target.get("tolerance") or {}) for m in metrics]
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


# --- shared pieces ------------------------------------------------------------------------------


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        + "".join(body)
        + "<footer>Written by edgezoo. This page is self-contained: it needs no network and no other file.</footer>"
        + "</main></body></html>\n"
    )


def _key_values(values: dict) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_plain(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def _raw_json(data: dict) -> str:
    return f"<details><summary>report.json</summary><pre>{escape(json.dumps(data, indent=1))}</pre></details>"


def _metric_value(metric: str, value) -> str:
    if value is None:
        return "–"
    if metric.endswith("_agreement"):
        return f"{100 * value:.1f}%"
    if metric.endswith("_db"):
        return f"{value:.1f}"
    if metric == "cosine":
        return f"{value:.6f}"
    return f"{value:.3g}"


def _plain(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _count(value) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return str(value)


def _bytes(count) -> str:
    if count is None:
        return "–"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return str(count)


def write_target_html(folder: Path, report: dict) -> Path:
    path = folder / "report.html"
    write_text(path, render_target_report(report))
    return path


def write_summary_html(folder: Path, summary: dict) -> Path:
    path = folder / "report.html"
    write_text(path, render_run_summary(summary))
    return path
