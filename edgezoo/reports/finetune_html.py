"""report.html of a finetune run (OUT/<name>/finetune/): learning curves, the test split's confusion matrix, per-class
precision and recall, task accuracy per runtime, and thumbnails of test images the model gets wrong. Self-contained
like every edgezoo page: inline style, SVG and PNG data URIs, no scripts."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

import numpy as np

from edgezoo.reports import plots
from edgezoo.reports.html import bytes_text, page, raw_json
from edgezoo.reports.json_report import write_text

THUMBNAIL_PIXELS = 96  # the longer side of a thumbnail (tiny images are enlarged, pixel by pixel)


def render(report: dict, test=None) -> str:
    model, test_scores = report["model"], report["test"]
    training = report["training"]
    accuracy = test_scores["accuracy"]
    title = f"{model['name']}: transfer learning on {training['backbone']['name']}"
    split = training["split"]
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<div class=sub>{len(model.get('labels') or training['data']['classes'])} classes · {split['train']} training, "
        f"{split['validation']} validation, {split['test']} test images (stratified, seed {split['seed']}) · "
        f"test accuracy {_percent(accuracy)}</div>",
        "<h2>Task accuracy per runtime (test split, against the true labels)</h2>",
        _accuracy_table(report["accuracy"]),
        _error_note(report.get("conversion_error")),
        "<h2>Learning curves</h2>",
        _curves(training["history"], training.get("best", {})),
        "<h2>Confusion matrix (float model, test split)</h2>",
        _confusion(test_scores["confusion"], training["data"]["classes"]),
        "<h2>Per-class precision and recall (float model, test split)</h2>",
        _per_class(test_scores["per_class"]),
        "<h2>Test images it gets wrong</h2>",
        _misclassified(report.get("misclassified", []), test),
        "<h2>Model and training</h2>",
        _settings(report),
        raw_json(report),
    ]
    return page(title, body)


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _accuracy_table(rows: list[dict]) -> str:
    head = ("<tr><th>model</th><th>runtime</th><th>format</th><th>quantisation</th><th>size</th><th>accuracy</th>"
            "<th>agrees with its float model</th><th>parity</th></tr>")
    body = []
    for row in rows:
        if row.get("accuracy") is None:
            reason = escape(row.get("error") or row.get("status") or "not measured")
            body.append(f"<tr><td>{escape(row['model'])}</td><td>{escape(str(row.get('runtime') or '–'))}</td>"
                        f"<td colspan=6 class=bad>{reason}</td></tr>")
            continue
        parity = row.get("status", "reference")
        css = "ok" if parity in ("passed", "reference") else "bad"
        body.append(
            f"<tr><td>{escape(row['model'])}</td><td>{escape(row['runtime'])}</td><td>{escape(row.get('format') or '')}</td>"
            f"<td>{escape(row.get('quantization') or '')}</td><td class=num>{bytes_text(row.get('size_bytes'))}</td>"
            f"<td class=num><b>{_percent(row['accuracy'])}</b> ({row['samples']})</td>"
            f"<td class=num>{_percent(row.get('agreement_with_float'))}</td><td class={css}>{escape(parity)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _error_note(error: str | None) -> str:
    return f"<div class=warn>The conversion stopped: {escape(error)}</div>" if error else ""


def _curves(history: list[dict], best: dict) -> str:
    if not history:
        return "<p>No epochs recorded.</p>"
    steps = list(range(1, len(history) + 1))  # epochs of every phase, one after the other
    marks = []
    start = 0
    for phase in dict.fromkeys(row["phase"] for row in history):
        rows = [i for i, row in enumerate(history) if row["phase"] == phase]
        if start:
            marks.append((rows[0] + 1 - 0.5, phase))
        if phase in best:
            marks.append((rows[0] + best[phase]["epoch"], f"best {phase}"))
        start = rows[-1] + 1
    charts = []
    for metric, label in (("loss", "loss"), ("accuracy", "accuracy")):
        series = [(f"{split} {label}", [(s, row.get(key)) for s, row in zip(steps, history)])
                  for split, key in (("train", metric), ("validation", f"val_{metric}"))]
        charts.append(plots.line_chart(series, f"{label} per epoch", "epoch (all phases)", label, marks))
    return f"<div class=plots>{''.join(charts)}</div>"


def _confusion(matrix: list[list[int]], classes: list[str]) -> str:
    largest = max((max(row) for row in matrix), default=1) or 1
    head = "<tr><th>true ↓ / predicted →</th>" + "".join(f"<th>{escape(name)}</th>" for name in classes) + "</tr>"
    rows = []
    for name, row in zip(classes, matrix):
        cells = []
        for column, count in enumerate(row):
            diagonal = classes[column] == name
            shade = int(235 - 120 * count / largest) if count else 255
            colour = f"rgb({shade},{255 if diagonal else shade},{shade if diagonal else 255})" if count else "#fff"
            cells.append(f'<td class=num style="background:{colour}">{count}</td>')
        rows.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _per_class(per_class: list[dict]) -> str:
    head = "<tr><th>class</th><th>test images</th><th>precision</th><th>recall</th></tr>"
    rows = "".join(f"<tr><td>{escape(c['class'])}</td><td class=num>{c['support']}</td><td class=num>{_percent(c['precision'])}</td>"
                   f"<td class=num>{_percent(c['recall'])}</td></tr>" for c in per_class)
    return f"<table>{head}{rows}</table>"


def thumbnail(pixels: np.ndarray) -> str:
    """A PNG data URI of one raw image [H, W, C] 0..255, enlarged with nearest-neighbour when tiny."""
    from PIL import Image

    array = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array, mode="L" if array.shape[-1] == 1 else "RGB")
    factor = THUMBNAIL_PIXELS / max(image.size)
    size = (max(1, round(image.size[0] * factor)), max(1, round(image.size[1] * factor)))
    image = image.resize(size, Image.Resampling.NEAREST if factor > 1 else Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _misclassified(items: list[dict], test) -> str:
    if not items:
        return "<p>None: the float model classifies every test image correctly.</p>"
    figures = []
    for item in items:
        image = (f'<img src="{thumbnail(test.pixels[item["index"]])}" alt="{escape(item["name"])}" '
                 f'style="image-rendering:pixelated;display:block">' if test is not None else "")
        figures.append(f'<figure style="display:inline-block;margin:6px;background:#fff;border:1px solid #dde;padding:6px">{image}'
                       f'<figcaption style="font-size:12px">{escape(item["name"])}<br>true <b>{escape(item["true"])}</b>, '
                       f'predicted <b class=bad>{escape(item["predicted"])}</b></figcaption></figure>')
    return "".join(figures)


def _settings(report: dict) -> str:
    training, backbone = report["training"], report["backbone"]
    rows = {"backbone": f"{backbone['source']} ({backbone['kind']}, {backbone['feature_size']} features, input {backbone['input_shape']})",
            "preprocessing inside the model": backbone["preprocessing"]["description"],
            "model input": report["model"]["preprocessing"]["description"],
            "class weights": ", ".join(f"{k}: {v:.3g}" for k, v in training["class_weights"].items()),
            "best epochs": ", ".join(f"{phase}: {b['epoch']} of {b['epochs_run']} (val loss {b['val_loss']:.4g})"
                                     for phase, b in training["best"].items()),
            "data": f"{training['data'].get('reader')} {training['data'].get('path')}",
            "settings": ", ".join(f"{k}={v}" for k, v in training["settings"].items())}
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def write_finetune_html(folder: Path, report: dict, test=None) -> Path:
    path = folder / "report.html"
    write_text(path, render(report, test))
    return path
