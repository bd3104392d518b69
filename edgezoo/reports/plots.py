"""Small inline SVG plots for the HTML reports: no scripts, no external assets, readable offline."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 520, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 56, 36, 24
BAR = "#3b6ea8"
BAR_BAD = "#c0392b"
AXIS = "#555"


def _number(value: float) -> str:
    return f"{value:.3g}"


def error_histogram(histogram: dict, title: str) -> str:
    """Bars of the signed error's distribution, counts on a log scale so that the tails show."""
    counts, edges = histogram["counts"], histogram["edges"]
    plot_w, plot_h = WIDTH - MARGIN_LEFT - 12, HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    top = math.log10(1 + max(counts)) if counts and max(counts) > 0 else 1.0
    bar_w = plot_w / max(len(counts), 1)
    parts = [_frame(title)]
    for index, count in enumerate(counts):
        height = plot_h * math.log10(1 + count) / top
        x = MARGIN_LEFT + index * bar_w
        tip = f"{_number(edges[index])} .. {_number(edges[index + 1])}: {count}"
        parts.append(
            f'<rect x="{x:.1f}" y="{MARGIN_TOP + plot_h - height:.1f}" width="{max(bar_w - 1, 1):.1f}" '
            f'height="{height:.1f}" fill="{BAR}"><title>{escape(tip)}</title></rect>'
        )
    baseline = MARGIN_TOP + plot_h
    parts.append(_line(MARGIN_LEFT, baseline, MARGIN_LEFT + plot_w, baseline))
    parts.append(_line(MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT, baseline))
    if edges:
        parts.append(_text(MARGIN_LEFT, baseline + 16, _number(edges[0]), "start"))
        parts.append(_text(MARGIN_LEFT + plot_w, baseline + 16, _number(edges[-1]), "end"))
        if edges[0] < 0 < edges[-1]:
            zero_x = MARGIN_LEFT + plot_w * (0 - edges[0]) / (edges[-1] - edges[0])
            parts.append(_line(zero_x, MARGIN_TOP, zero_x, baseline, dash=True))
            parts.append(_text(zero_x, baseline + 16, "0", "middle"))
    parts.append(_text(MARGIN_LEFT + plot_w / 2, HEIGHT - 4, "error (artifact - original)", "middle"))
    peak = max(counts) if counts else 0
    parts.append(_text(MARGIN_LEFT - 6, MARGIN_TOP + 4, str(peak), "end"))
    parts.append(_text(MARGIN_LEFT - 6, baseline, "0", "end"))
    parts.append(_text(14, MARGIN_TOP + plot_h / 2, "count (log)", "middle", rotate=True))
    if histogram.get("non_finite"):
        parts.append(_text(WIDTH - 8, MARGIN_TOP + 12, f"+ {histogram['non_finite']} NaN/Inf", "end", color=BAR_BAD))
    return _svg(parts, HEIGHT)


def horizontal_bars(items: list[tuple[str, float, bool]], title: str, unit: str = "") -> str:
    """One bar per (label, value, bad) item, largest first as given; bad bars in red."""
    row = 20
    height = MARGIN_TOP + row * max(len(items), 1) + 12
    label_w = 190
    plot_w = WIDTH - label_w - 70
    largest = max((abs(v) for _, v, _ in items if math.isfinite(v)), default=1.0) or 1.0
    parts = [_frame(title)]
    for index, (label, value, bad) in enumerate(items):
        y = MARGIN_TOP + index * row
        shown = abs(value) if math.isfinite(value) else largest
        width = max(plot_w * shown / largest, 1)
        short = label if len(label) <= 30 else "…" + label[-29:]
        parts.append(_text(label_w - 6, y + 14, short, "end", tip=label))
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" fill="{BAR_BAD if bad else BAR}"/>')
        parts.append(_text(label_w + width + 4, y + 14, f"{_number(value)}{unit}", "start"))
    return _svg(parts, height)


def _svg(parts: list[str], height: float) -> str:
    body = "".join(parts)
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" role="img">{body}</svg>'


def _frame(title: str) -> str:
    return f'<text x="{WIDTH / 2}" y="15" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>'


def _line(x1, y1, x2, y2, dash: bool = False) -> str:
    style = ' stroke-dasharray="4 3"' if dash else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{AXIS}"{style}/>'


def _text(x, y, text: str, anchor: str, rotate: bool = False, color: str = AXIS, tip: str | None = None) -> str:
    transform = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11" fill="{color}"{transform}>{title}{escape(text)}</text>'
    )


GOOD = "#1e8449"


def size_snr(series: list[tuple[str, list[dict]]], title: str, min_snr_db: float | None = None) -> str:
    """Artifact size against worst-output SNR: one line of points per series (the fallback's steps, auto's candidates),
    each point {size_bytes, snr_db, passed, kept, label}; passing points green, failing red, the kept one ringed, the
    tolerance's SNR limit dashed."""
    points = [p for _, ps in series for p in ps if p.get("size_bytes") and p.get("snr_db") is not None]
    if not points:
        return ""
    height = HEIGHT + 40
    plot_w, plot_h = WIDTH - MARGIN_LEFT - 16, height - MARGIN_BOTTOM - MARGIN_TOP
    sizes = [p["size_bytes"] / 1024 for p in points]
    snrs = [max(min(p["snr_db"], 150.0), -20.0) for p in points]  # identical outputs (300 dB) and NaN (-300) clipped to the frame
    x_low, x_high = min(sizes), max(sizes)
    y_low, y_high = min(snrs + ([min_snr_db] if min_snr_db is not None else [])), max(snrs + ([min_snr_db] if min_snr_db is not None else []))
    x_pad = (x_high - x_low) * 0.08 or max(x_high * 0.1, 1.0)
    y_pad = (y_high - y_low) * 0.08 or 5.0
    x_low, x_high, y_low, y_high = x_low - x_pad, x_high + x_pad, y_low - y_pad, y_high + y_pad
    x = lambda v: MARGIN_LEFT + plot_w * (v - x_low) / (x_high - x_low)  # noqa: E731
    y = lambda v: MARGIN_TOP + plot_h * (1 - (v - y_low) / (y_high - y_low))  # noqa: E731
    parts = [_frame(title)]
    baseline = MARGIN_TOP + plot_h
    parts.append(_line(MARGIN_LEFT, baseline, MARGIN_LEFT + plot_w, baseline))
    parts.append(_line(MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT, baseline))
    if min_snr_db is not None:
        parts.append(_line(MARGIN_LEFT, y(min_snr_db), MARGIN_LEFT + plot_w, y(min_snr_db), dash=True))
        parts.append(_text(MARGIN_LEFT + plot_w, y(min_snr_db) - 3, f"limit {min_snr_db:g} dB", "end"))
    shapes = ("circle", "square")
    for number, (name, ps) in enumerate(series):
        drawn = sorted((p for p in ps if p.get("size_bytes") and p.get("snr_db") is not None), key=lambda p: p["size_bytes"])
        coords = [(x(p["size_bytes"] / 1024), y(max(min(p["snr_db"], 150.0), -20.0))) for p in drawn]
        if len(coords) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{cx:.1f},{cy:.1f}" for i, (cx, cy) in enumerate(coords))
            parts.append(f'<path d="{path}" fill="none" stroke="{AXIS}" stroke-width="1" stroke-opacity="0.5"/>')
        for point, (cx, cy) in zip(drawn, coords):
            color = GOOD if point.get("passed") else BAR_BAD
            tip = f"{point.get('label', '')}: {point['size_bytes']:,} bytes, {point['snr_db']:.1f} dB, {'passed' if point.get('passed') else 'failed'}"
            if shapes[number % 2] == "circle":
                mark = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{color}"><title>{escape(tip)}</title></circle>'
            else:
                mark = f'<rect x="{cx - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" fill="{color}"><title>{escape(tip)}</title></rect>'
            parts.append(mark)
            if point.get("kept"):
                parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="none" stroke="{BAR}" stroke-width="2"/>')
                parts.append(_text(cx + 11, cy - 8, "kept", "start", color=BAR))
    legend = " · ".join(f"{'●' if shapes[i % 2] == 'circle' else '■'} {name}" for i, (name, _) in enumerate(series))
    parts.append(_text(MARGIN_LEFT + 4, MARGIN_TOP + 10, legend, "start"))
    parts.append(_text(MARGIN_LEFT, baseline + 16, f"{x_low:.1f}", "start"))
    parts.append(_text(MARGIN_LEFT + plot_w, baseline + 16, f"{x_high:.1f}", "end"))
    parts.append(_text(MARGIN_LEFT + plot_w / 2, height - 4, "artifact size (KiB)", "middle"))
    parts.append(_text(MARGIN_LEFT - 6, MARGIN_TOP + 4, f"{y_high:.0f}", "end"))
    parts.append(_text(MARGIN_LEFT - 6, baseline, f"{y_low:.0f}", "end"))
    parts.append(_text(14, MARGIN_TOP + plot_h / 2, "worst SNR (dB)", "middle", rotate=True))
    return _svg(parts, height)


CURVE_COLOURS = ("#3b6ea8", "#e67e22", "#1e8449", "#8e44ad")


def line_chart(series: list[tuple[str, list[tuple[float, float]]]], title: str, x_label: str, y_label: str,
               marks: list[tuple[float, str]] = ()) -> str:
    """One line per (name, [(x, y)...]) series (learning curves), with dashed vertical marks at given x values."""
    points = [p for _, ps in series for p in ps if p[1] is not None and math.isfinite(p[1])]
    if not points:
        return ""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - 16, HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    x_high = x_high if x_high > x_low else x_low + 1
    y_pad = (y_high - y_low) * 0.08 or max(abs(y_high) * 0.1, 0.05)
    y_low, y_high = y_low - y_pad, y_high + y_pad
    x = lambda v: MARGIN_LEFT + plot_w * (v - x_low) / (x_high - x_low)  # noqa: E731
    y = lambda v: MARGIN_TOP + plot_h * (1 - (v - y_low) / (y_high - y_low))  # noqa: E731
    baseline = MARGIN_TOP + plot_h
    parts = [_frame(title), _line(MARGIN_LEFT, baseline, MARGIN_LEFT + plot_w, baseline), _line(MARGIN_LEFT, MARGIN_TOP, MARGIN_LEFT, baseline)]
    for value, label in marks:
        parts.append(_line(x(value), MARGIN_TOP, x(value), baseline, dash=True))
        right = x(value) > MARGIN_LEFT + plot_w * 0.7  # near the right edge: the label goes left of the mark, below the legend
        parts.append(_text(x(value) + (-3 if right else 3), baseline - 6, label, "end" if right else "start"))
    legend = []
    for number, (name, ps) in enumerate(series):
        colour = CURVE_COLOURS[number % len(CURVE_COLOURS)]
        drawn = [(x(px), y(py)) for px, py in ps if py is not None and math.isfinite(py)]
        if len(drawn) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{cx:.1f},{cy:.1f}" for i, (cx, cy) in enumerate(drawn))
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colour}"/>' for cx, cy in drawn)
        legend.append(_text(WIDTH - 16, MARGIN_TOP + 12 + 14 * number, f"— {name}", "end", color=colour))
    parts.extend(legend)
    parts.append(_text(MARGIN_LEFT, baseline + 16, _number(x_low), "start"))
    parts.append(_text(MARGIN_LEFT + plot_w, baseline + 16, _number(x_high), "end"))
    parts.append(_text(MARGIN_LEFT + plot_w / 2, HEIGHT - 4, x_label, "middle"))
    parts.append(_text(MARGIN_LEFT - 6, MARGIN_TOP + 4, _number(y_high), "end"))
    parts.append(_text(MARGIN_LEFT - 6, baseline, _number(y_low), "end"))
    parts.append(_text(14, MARGIN_TOP + plot_h / 2, y_label, "middle", rotate=True))
    return _svg(parts, HEIGHT)
