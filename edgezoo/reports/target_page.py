"""report.html of one target: verdict, parity per output, the artifact, quantisation, calibration, model and tools."""

from __future__ import annotations

from html import escape
from pathlib import Path

from edgezoo.reports import plots
from edgezoo.reports.html import (METRIC_ORDER, NOT_METRICS, bytes_text, count_text, key_values, metrics_table, model_section, page, plain, raw_json, tools_section, verdict_header)
from edgezoo.reports.json_report import write_text
from edgezoo.reports.detections import section as detections_section
from edgezoo.reports.placement import section as placement_section
from edgezoo.reports.quantization import section as quantization_section, suggestion as suggestion_section


def render_target_report(report: dict) -> str:
    parity = report["parity"]
    artifact = report["artifact"]
    title = f"{report['model']['name']} → {report['target']}"
    body = [
        verdict_header(title, report["passed"], f"{report['format']} · {report['quantization']} · checked on {parity['runtime']} "
                        f"over {parity['num_samples']} held-out inputs · {report.get('created_at', '')}"),
        _cards(report),
        "<h2>Parity with the original</h2>",
        _parity_section(parity),
        suggestion_section(report),
        detections_section(report.get("detections")),
        quantization_section(report),
        "<h2>Artifact</h2>",
        _artifact_section(artifact),
        placement_section(report.get("placement")),
        _optional_section("Footprint on the device", report.get("footprint")),
        _optional_section("Pruning", report.get("pruning")),
        _validated_section(report.get("validated")),
        _device_check_section(report.get("device_check")),
        "<h2>Calibration and validation data</h2>",
        _calibration_section(report.get("calibration") or {}),
        "<h2>Model</h2>",
        model_section(report["model"]),
        "<h2>Target profile</h2>",
        key_values({k: v for k, v in report.get("target_profile", {}).items() if k != "tolerances"}),
        "<h2>Tools</h2>",
        tools_section(report.get("tools") or {}),
        raw_json(report),
    ]
    return page(title, body)


def _cards(report: dict) -> str:
    artifact = report["artifact"]
    footprint = report.get("footprint") or {}
    cards = [("model size", bytes_text(artifact.get("size_bytes"))), ("ops", str(len(artifact.get("ops") or [])))]
    if footprint.get("arena_bytes") is not None:
        cards.append(("tensor arena", bytes_text(footprint["arena_bytes"])))
    if footprint.get("parameter_count") is not None:
        cards.append(("parameters", f"{footprint['parameter_count']:,}"))
    if footprint.get("macs") is not None:
        cards.append(("MACs per sample", count_text(footprint["macs"])))
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
        parts.append(metrics_table(parity["outputs"], parity.get("tolerance") or {}))
        plots_html = [
            plots.error_histogram(o["error_histogram"], f"error histogram: {o['name']}") for o in parity["outputs"] if o.get("error_histogram")
        ]
        if plots_html:
            parts.append("<div class=plots>" + "".join(plots_html) + "</div>")
    return "".join(parts)


def _artifact_section(artifact: dict) -> str:
    main = {"file": artifact.get("path"), "size": bytes_text(artifact.get("size_bytes")), "sha256": artifact.get("sha256")}
    extra = {k: v for k, v in artifact.items() if k not in {"path", "size_bytes", "sha256", "ops", "files"}}
    files = artifact.get("files") or []
    ops = artifact.get("ops") or []
    ops_html = "<div class=ops>" + "".join(f"<span>{escape(op)}</span>" for op in ops) + "</div>" if ops else "<p>no op list</p>"
    return (
        key_values({**main, "files": ", ".join(files), **extra})
        + f"<h3>Ops used ({len(ops)})</h3>{ops_html}"
    )


def _validated_section(validated: dict | None) -> str:
    """edgezoo validate: the artifact as given, and how each of its tensors was matched to the original's."""
    if not validated:
        return ""
    general = {k: v for k, v in validated.items() if k not in {"inputs", "outputs", "matching", "matching_uncertain"}}
    parts = ["<h2>Made by another tool, validated by edgezoo</h2>", key_values(general)]
    matching = validated.get("matching")
    if not matching:  # a report written before tensors were matched by values
        return "".join(parts) + key_values({"inputs": validated.get("inputs"), "outputs": validated.get("outputs")})
    if validated.get("matching_uncertain"):
        parts.append("<div class=warn>UNCERTAIN MATCH: not every tensor was matched with certainty (in red below: matched by "
                     "values whose best alternative is less than twice as far from the original, or left undecided because the "
                     "artifact did not run); the verdict may rest on a wrong match. Name them with --input-map / --output-map.</div>")
    head = "<tr><th></th><th>original</th><th>artifact's tensor</th><th>matched</th><th>error</th><th>best alternative</th><th>margin</th></tr>"
    rows = []
    for kind, matches in matching.items():
        for name, match in matches.items():
            by_values = match.get("how") == "matched by values"
            alternative = f"{match['alternative']} ({plain(match['alternative_error'])})" if by_values else "–"
            margin = f"{match['margin']:.3g}×" if by_values else "–"
            css = "ok" if match.get("certain") else "bad"
            rows.append(f"<tr><th>{escape(kind[:-1])}</th><td>{escape(name)}</td><td>{escape(match['tensor'])}</td>"
                        f"<td class={css}>{escape(match['how'] + ('' if match.get('certain') else ', UNCERTAIN'))}</td><td class=num>{escape(plain(match.get('error')))}</td>"
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
        + key_values({"files": ", ".join(device_check.get("files") or [])})
    )


def _optional_section(title: str, values: dict | None) -> str:
    return f"<h2>{escape(title)}</h2>" + key_values(values) if values else ""


def _calibration_section(calibration: dict) -> str:
    parts = [f"<div class=warn>{escape(w)}</div>" for w in calibration.get("warnings") or []]
    general = {k: v for k, v in calibration.items() if k not in {"inputs", "warnings"}}
    parts.append(key_values(general))
    inputs = calibration.get("inputs") or {}
    if inputs:
        columns = sorted({key for stats in inputs.values() for key in stats})
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        rows = "".join(
            f"<tr><th>{escape(name)}</th>" + "".join(f"<td class=num>{escape(plain(stats.get(c)))}</td>" for c in columns) + "</tr>"
            for name, stats in inputs.items()
        )
        parts.append(f"<table><tr><th>input</th>{head}</tr>{rows}</table>")
    return "".join(parts)


def write_target_html(folder: Path, report: dict) -> Path:
    path = folder / "report.html"
    write_text(path, render_target_report(report))
    return path
