"""report.html's quantisation section: what the artifact computes in, where its error comes from, the fallback's steps
and auto's candidates (tables, and size against SNR on one plot with the artifact kept marked)."""

from __future__ import annotations

import math
from html import escape

from edgezoo.reports import plots
from edgezoo.validate.metrics import SNR_CAP_DB  # identical outputs; its negative: NaN or Inf outputs

SOURCE_LABELS = {"io": "inputs/outputs rounded alone", "weights": "int8 weights alone", "activations": "activations (the rest)"}




def _db(value) -> str:
    if value is None:
        return "–"
    if value >= SNR_CAP_DB:
        return "exact"
    return "NaN/Inf" if value <= -SNR_CAP_DB else f"{value:.1f}"


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def _bytes(count) -> str:
    return "–" if count is None else f"{count:,}"


def section(report: dict) -> str:
    precision, trace = report.get("precision"), report.get("quantization_trace")
    fallback, auto = report.get("float_fallback") or {}, report.get("auto_quantization")
    if not (precision or trace or auto):
        return ""
    parts = ["<h2>Quantisation</h2>"]
    if precision:
        counts = ", ".join(f"{count} {kind}" for kind, count in precision["ops_by_precision"].items())
        layers = precision.get("float_layers") or []
        shown = ", ".join(layers[:20]) + (f" and {len(layers) - 20} more" if len(layers) > 20 else "")
        parts.append(f"<p class=sub>Read from the artifact: ops computing in {escape(counts)}; {precision.get('conversions', 0)} "
                     f"quantize/dequantize op(s)." + (f" Layers computing in float: {escape(shown)}." if layers else "") + "</p>")
    if trace and trace.get("status") == "unavailable":
        parts.append(f"<div class=warn>Error trace unavailable: {escape(trace['error'])}</div>")
    elif trace:
        if trace.get("candidate"):
            parts.append(f"<p class=sub>The {escape(trace['candidate'])} candidate, not kept:</p>")
        parts.append(_trace(trace))
    if fallback.get("message") and fallback.get("outcome") != "not needed":
        parts.append(f"<div class=warn>Float fallback: {escape(fallback['message'])}</div>")
    if fallback.get("steps"):
        parts.append(_steps(fallback))
    if auto:
        parts.append(_auto(auto))
    limit = (report.get("parity", {}).get("tolerance") or {}).get("min_snr_db")
    series = []
    if fallback.get("steps"):
        kept = fallback.get("kept_step")
        series.append(("fallback steps (ops in float)", [  # under auto, the artifact kept is marked among auto's candidates
            {**s, "kept": i == kept and not auto, "label": f"{s['float_count']} op(s) in float"} for i, s in enumerate(fallback["steps"])]))
    if auto:
        series.append(("auto candidates", [{**c, "label": c["candidate"]} for c in auto["candidates"]]))
    # One SNR limit applies to the fallback's steps (int8's); auto's candidates each have their own tolerance.
    chart = plots.size_snr(series, "size against SNR", None if auto else limit) if series else ""
    if chart:
        parts.append(f"<div class=plots>{chart}</div>")
    return "".join(parts)


def _trace(trace: dict) -> str:
    shares = trace["shares"]
    worst = trace["worst_output"]
    figures = trace["outputs"][worst]
    rows = [f"<tr><th>the artifact (all sources)</th><td class=num>{_db(figures['total_snr_db'])}</td><td class=num>100%</td></tr>",
            f"<tr><th>{SOURCE_LABELS['io']}</th><td class=num>{_db(figures['io_snr_db'])}</td><td class=num>{shares['io']:.0%}</td></tr>",
            f"<tr><th>{SOURCE_LABELS['weights']}</th><td class=num>{_db(figures['weights_snr_db'])}</td><td class=num>{shares['weights']:.0%}</td></tr>",
            f"<tr><th>{SOURCE_LABELS['activations']}</th><td class=num>–</td><td class=num>{shares['activations']:.0%}</td></tr>"]
    parts = [f"<p class=sub>Error traced to its source on {trace['samples']} held-out inputs, against the float32 .tflite, for the "
             f"worst output ({escape(worst)}): each source measured alone, as SNR and as a share of the artifact's noise power.</p>",
             f"<table><tr><th>source</th><th>SNR dB</th><th>share</th></tr>{''.join(rows)}</table>"]
    if trace.get("advice"):
        parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in trace["advice"]) + "</ul>")
    layers = trace.get("layers") or []
    if layers:
        total = 10 ** (-figures["total_snr_db"] / 10) if figures["total_snr_db"] is not None else None
        body = "".join(
            f"<tr><th>{escape(layer['layer'])}</th><td>{escape(layer['op'])}</td><td class=num>{_db(layer['snr_db'])}</td>"
            f"<td class=num>{_db(layer['added_snr_db'])}</td><td class=num>{_db(layer.get('solo_snr_db'))}</td></tr>"
            for layer in layers[:20])
        parts.append("<p class=sub>Per layer, worst effect first: the tensor's SNR in the int8 model, the op's own error (what it adds "
                     "to what reaches it), and the model output's SNR with only this op in int8.</p>"
                     f"<table><tr><th>layer</th><th>op</th><th>tensor SNR dB</th><th>own error dB</th><th>alone in int8 dB</th></tr>{body}</table>")
        if total:
            items = [(layer["layer"], math.inf if layer["solo_snr_db"] <= -SNR_CAP_DB else 100 * 10 ** (-layer["solo_snr_db"] / 10) / total, False)
                     for layer in layers[:15] if layer.get("solo_snr_db") is not None]
            if items:
                parts.append("<div class=plots>" + plots.horizontal_bars(items, "each layer alone: % of the int8 model's noise", "%") + "</div>")
    return "".join(parts)


def _steps(fallback: dict) -> str:
    kept = fallback.get("kept_step")
    rows = "".join(
        f"<tr{' class=ok' if i == kept else ''}><td class=num>{s['float_count']}</td><td class=num>{_bytes(s['size_bytes'])}</td>"
        f"<td class=num>{_db(s['snr_db'])}</td><td class='{'ok' if s['passed'] else 'bad'}'>{'passed' if s['passed'] else 'failed'}"
        f"{' (kept)' if i == kept else ''}</td><td class=num>{s['seconds']:.1f}</td><td>{escape(s.get('error') or ', '.join(f'{n} {k}' for k, n in (s.get('ops_by_precision') or {}).items()))}</td></tr>"
        for i, s in enumerate(fallback["steps"]))
    return (f"<p class=sub>The fallback's search: ops ranked by measured effect, the worst k kept in float, k found by bisection over "
            f"0..{fallback.get('float_end_count')} (the float end), each step converted, read back and checked.</p>"
            f"<table><tr><th>ops in float</th><th>bytes</th><th>worst SNR dB</th><th>verdict</th><th>seconds</th><th>ops by precision (read back)</th></tr>{rows}</table>")


def _candidates(candidates: list[dict]) -> str:
    rows = "".join(
        f"<tr><th>{escape(c['candidate'])}</th><td class=num>{_bytes(c['size_bytes'])}</td><td class=num>{_db(c['snr_db'])}</td>"
        f"<td class='{'ok' if c['passed'] else 'bad'}'>{escape(c['verdict'])}{' (kept)' if c.get('kept') else ''}</td>"
        f"<td class=num>{c['seconds']:.1f}</td><td>{escape(_short(c.get('note') or ''))}</td></tr>"
        for c in candidates)
    return f"<table><tr><th>candidate</th><th>bytes</th><th>worst SNR dB</th><th>verdict</th><th>seconds</th><th>note</th></tr>{rows}</table>"


def _auto(auto: dict) -> str:
    chosen = auto.get("chosen")
    head = f"auto chose {escape(chosen)}" if chosen else "no candidate passed; the artifact kept is the one closest to the tolerance"
    prefer = " (--auto-prefer integer: a passing full-integer candidate first)" if auto.get("prefer") == "integer" else ""
    return (f"<p class=sub>--quantize auto: {head}{prefer}. Every candidate made and measured by its size; checked on the "
            f"runtime when smaller than the best that passed before it:</p>" + _candidates(auto["candidates"]))


def suggestion(report: dict) -> str:
    """A failed verdict's `suggestion`: what passes, measured, and the other candidates."""
    found = report.get("suggestion")
    if not found:
        return ""
    if found.get("status") == "unavailable":
        return f"<div class=warn>What passes could not be measured: {escape(found['error'])}</div>"
    table = _candidates(found["candidates"]) if found["candidates"] else ""
    return f"<h2>What passes</h2><div class=warn>{escape(found['message'])}</div>{table}"
