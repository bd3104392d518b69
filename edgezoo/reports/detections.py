"""report.html's pictures of a detector's boxes: a few held-out images with the original's boxes and the artifact's
drawn over them (inline SVG around an embedded JPEG, so the page stays one self-contained file), mismatches in red.

The images come from report.json's `detections.pictures` (written by edgezoo/tasks/detection.py), the boxes from its
per-image detections and matches (edgezoo/validate/detection.py).
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

MAX_PICTURES = 4
SHOWN_SIZE = 256  # pixels on the page, whatever the model's input size


def picture_images(heldout: np.ndarray, preprocessing, images: list[dict]) -> list[dict]:
    """Which held-out images to draw (those with mismatches first, then the first ones), as JPEG data for the page."""
    from PIL import Image

    troubled = [i for i, entry in enumerate(images) if entry["missed"] or entry["extra"]]
    chosen = list(dict.fromkeys(troubled + list(range(len(images)))))[:MAX_PICTURES]
    pictures = []
    for index in chosen:
        pixels = raw_pixels(heldout[index], preprocessing)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        pictures.append({"index": index, "jpeg_base64": base64.b64encode(buffer.getvalue()).decode("ascii")})
    return pictures


def raw_pixels(model_input: np.ndarray, preprocessing) -> np.ndarray:
    """A preprocessed input back to 8-bit pixels (the inverse of Preprocessing.apply)."""
    x = model_input.astype(np.float64)
    if preprocessing.std is not None:
        x = x * np.asarray(preprocessing.std)
    if preprocessing.mean is not None:
        x = x + np.asarray(preprocessing.mean)
    x = (x - preprocessing.offset) / preprocessing.scale * (255.0 / preprocessing.pixel_max)
    if preprocessing.channel_order == "BGR":
        x = x[..., ::-1]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def section(detections: dict | None) -> str:
    """The pictures and a legend; empty when the report has no detections."""
    if not detections or not detections.get("pictures"):
        return ""
    labels = detections.get("labels") or []
    figures = [_figure(p, detections, labels) for p in detections["pictures"]]
    legend = ("<p><span style='color:#1a7f37'>&#9633; original</span> · <span style='color:#0550ae'>&#9633; artifact</span> · "
              "<span style='color:#cf222e'>&#9633; mismatch (missed by the artifact, or extra in it)</span> · "
              "dashed: unmatched but within the score margin of the threshold</p>")
    summary = ""
    if "map50_original" in detections:
        summary = (f"<p>mAP@0.5 against the ground truth on the held-out images: original {detections['map50_original']:.3f}, "
                   f"artifact {detections['map50_artifact']:.3f}</p>")
    return "<h2>Detections on held-out images</h2>" + summary + legend + "<div class=plots>" + "".join(figures) + "</div>"


def _figure(picture: dict, detections: dict, labels: list[str]) -> str:
    index = picture["index"]
    reference, artifact = detections["reference"][index], detections["artifact"][index]
    matches = detections["images"][index]
    missed, extra = set(matches["missed"]), set(matches["extra"])
    near = set(matches.get("near_threshold", []))
    matched_artifact = {c for _, c, _ in matches["matched"]}
    s = SHOWN_SIZE
    shapes = [f"<image href='data:image/jpeg;base64,{picture['jpeg_base64']}' width='{s}' height='{s}'/>"]
    for r, det in enumerate(reference):
        colour = "#cf222e" if r in missed else "#1a7f37"
        shapes.append(_rect(det, colour, 3 if r in missed else 2, dashed=r in near, label=_label(det, labels, "orig")))
    for c, det in enumerate(artifact):
        colour = "#cf222e" if c in extra else "#0550ae"
        dashed = c not in extra and c not in matched_artifact
        shapes.append(_rect(det, colour, 3 if c in extra else 1, dashed=dashed, label=None, inset=2))
    caption = (f"held-out image {index}: {len(reference)} original, {len(artifact)} artifact, {len(matches['matched'])} matched"
               + (f", <b style='color:#cf222e'>{len(missed)} missed, {len(extra)} extra</b>" if missed or extra else ""))
    return (f"<figure><svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {s} {s}' width='{s}' height='{s}'>"
            + "".join(shapes) + f"</svg><figcaption>{caption}</figcaption></figure>")


def _label(det: dict, labels: list[str], side: str) -> str:
    cls = det["class"]
    name = labels[cls] if 0 <= cls < len(labels) else str(cls)
    return f"{name} {det['score']:.2f}"


def _rect(det: dict, colour: str, width: int, *, dashed: bool, label: str | None, inset: int = 0) -> str:
    s = SHOWN_SIZE
    ymin, xmin, ymax, xmax = (float(v) * s for v in det["box"])
    dash = " stroke-dasharray='4 3'" if dashed else ""
    rect = (f"<rect x='{xmin + inset:.1f}' y='{ymin + inset:.1f}' width='{max(xmax - xmin - 2 * inset, 1):.1f}' "
            f"height='{max(ymax - ymin - 2 * inset, 1):.1f}' fill='none' stroke='{colour}' stroke-width='{width}'{dash}/>")
    if label:
        rect += (f"<text x='{xmin:.1f}' y='{max(ymin - 2, 9):.1f}' font-size='10' fill='{colour}' "
                 f"style='paint-order:stroke;stroke:white;stroke-width:2px'>{escape(label)}</text>")
    return rect
