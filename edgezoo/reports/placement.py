"""Where each op runs, for report.html and the CLI: one summary line per backend ('GPU delegate: 143 of 150 ops,
2 partitions') and the ops a backend rejects, with its reason, dtypes and shapes. Reads report.json's `placement`
(edgezoo/formats/placement.py report_section)."""

from __future__ import annotations

from html import escape


def _shape(shape: list) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def section(placement: dict | None) -> str:
    if not placement:
        return ""
    parts = ["<h2>Where each op runs</h2>"]
    if placement.get("status") == "unavailable":
        return "".join(parts) + f"<div class=warn>Op placement unavailable: {escape(placement.get('error') or '')}</div>"
    for backend in placement["backends"]:
        parts.append(f"<h3>{escape(backend['summary'])}</h3>")
        parts.append(f"<p class=sub>{escape(backend.get('source') or '')}"
                     + "".join(f"<br>{escape(note)}" for note in backend.get("notes") or []) + "</p>")
        rejected = backend.get("rejected") or []
        if not rejected:
            parts.append("<p>Every op is accepted.</p>")
            continue
        head = "<tr><th>#</th><th>op</th><th>node</th><th>reason</th><th>dtypes</th><th>shapes</th></tr>"
        rows = "".join(
            f"<tr><td class=num>{op['index']}</td><td>{escape(op['op'])}</td><td>{escape(op.get('name') or '')}</td>"
            f"<td class=bad>{escape(op.get('reason') or '')}</td><td>{escape(', '.join(op.get('dtypes') or []))}</td>"
            f"<td>{escape(', '.join(_shape(s) for s in op.get('shapes') or []))}</td></tr>"
            for op in rejected
        )
        parts.append(f"<table>{head}{rows}</table>")
    return "".join(parts)


def summary_lines(report: dict) -> list[str]:
    """CLI lines after a target: one per backend, and the ops each rejects (at most five named)."""
    placement = report.get("placement")
    if not placement or placement.get("status") == "unavailable":
        return []  # an unavailable placement is listed with the other unavailable diagnostics
    lines = []
    for backend in placement["backends"]:
        rejected = backend.get("rejected") or []
        named = ", ".join(f"{op['op']} ({op['reason']})" for op in rejected[:5]) + (f", and {len(rejected) - 5} more" if len(rejected) > 5 else "")
        lines.append(f"  placement: {backend['summary']}" + (f"; rejected: {named}" if rejected else ""))
    return lines
