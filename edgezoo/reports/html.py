"""The pieces every report.html page is made of: style, page frame, tables and value formats.

Pages (target_page.py: one target; summary_page.py: a whole run) are self-contained: everything is inline (style,
SVG plots, no scripts, no external assets), so a page opens offline, from a device's file system or an e-mail
attachment, and shows the same thing everywhere. Pages are rendered from the report dictionaries alone.
"""

from __future__ import annotations

import json
from html import escape


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


def verdict_header(title: str, passed: bool, subtitle: str) -> str:
    verdict = '<span class="verdict pass">PASSED</span>' if passed else '<span class="verdict fail">FAILED</span>'
    return f"<h1>{verdict}{escape(title)}</h1><div class=sub>{escape(subtitle)}</div>"


def limit_for(metric: str, tolerance: dict) -> tuple[str, float] | None:
    """The tolerance limit that bounds a metric (targets.profile.LIMITS), as (direction sign, bound)."""
    from edgezoo.targets.profile import LIMITS

    for limit, (bounded, direction, _) in LIMITS.items():
        if bounded == metric and tolerance.get(limit) is not None:
            return ("≥" if direction == "min" else "≤"), tolerance[limit]
    return None


def judged_cell(metric: str, value, tolerance: dict) -> str:
    limit = limit_for(metric, tolerance)
    css = "num"
    if limit is not None and value is not None:
        within = value >= limit[1] if limit[0] == "≥" else value <= limit[1]
        css += " ok" if within else " bad"
    elif limit is not None:
        css += " bad"  # a bounded metric that could not be measured (NaN): not a pass
    return f"<td class='{css}'>{escape(metric_value(metric, value))}</td>"


def model_section(model: dict) -> str:
    specs = lambda items: ", ".join(f"{s['name']} {s['dtype']}{s['shape']}" for s in items)  # noqa: E731
    shown = {k: v for k, v in model.items() if k not in {"inputs", "outputs", "preprocessing"}}
    shown["inputs"] = specs(model.get("inputs") or [])
    shown["outputs"] = specs(model.get("outputs") or [])
    shown["preprocessing"] = (model.get("preprocessing") or {}).get("description")
    return key_values(shown)


def tools_section(tools: dict) -> str:
    return key_values({name: version or "not installed" for name, version in tools.items()})


def page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body><main>"
        + "".join(body)
        + "<footer>Written by edgezoo. This page is self-contained: it needs no network and no other file.</footer>"
        + "</main></body></html>\n"
    )


def key_values(values: dict) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(plain(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def raw_json(data: dict) -> str:
    return f"<details><summary>report.json</summary><pre>{escape(json.dumps(data, indent=1))}</pre></details>"


def metric_value(metric: str, value) -> str:
    if value is None:
        return "–"
    if metric.endswith("_agreement"):
        return f"{100 * value:.1f}%"
    if metric.endswith("_db"):
        return f"{value:.1f}"
    if metric == "cosine":
        return f"{value:.6f}"
    return f"{value:.3g}"


def plain(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def count_text(value) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return str(value)


def bytes_text(count) -> str:
    if count is None:
        return "–"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return str(count)


def metric_names(outputs: list[dict]) -> list[str]:
    present = {key for o in outputs for key, value in o.items() if key not in NOT_METRICS}
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))


def metrics_table(outputs: list[dict], tolerance: dict) -> str:
    names = metric_names(outputs)
    head = "".join(
        f"<th>{escape(METRIC_LABELS.get(m, m))}" + (f"<span class=limit>{limit[0]} {metric_value(m, limit[1])}</span>" if (limit := limit_for(m, tolerance)) else "") + "</th>"
        for m in names
    )
    rows = []
    for output in outputs:
        cells = "".join(judged_cell(m, output.get(m), tolerance) for m in names)
        verdict = "ok" if output["passed"] else "bad"
        problems = "; ".join(output.get("violations") or []) or "within tolerance"
        kind = f"<span class=limit>{escape(output['kind'])}</span>" if output.get("kind") else ""
        rows.append(f"<tr><th>{escape(output['name'])}{kind}</th>{cells}<td class={verdict}>{escape(problems)}</td></tr>")
    return f"<table><tr><th>output</th>{head}<th>verdict</th></tr>{''.join(rows)}</table>"
