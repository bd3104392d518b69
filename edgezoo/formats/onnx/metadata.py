"""ONNX metadata: the model's `metadata_props` (string keys and values, as ONNX Runtime's
`get_modelmeta().custom_metadata_map` returns them) and its `doc_string` (the description).

Strings stay strings; lists and objects (labels, images, preprocessing) are JSON text. Keys are written in
one fixed order, so the same facts give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgezoo.errors import CorruptModelError

FORMAT = "onnx"
WHERE = "ONNX metadata_props and doc_string"
# metadata_props key -> the ModelFacts field it carries
KEYS = ("name", "description", "version", "author", "license", "task", "source", "source_sha256", "quantization",
        "converted_by", "labels", "labelled_output", "images", "preprocessing")


def props(facts) -> dict[str, str]:
    data = facts.to_json()
    values = {}
    for key in KEYS:
        value = data[key]
        if value is None or value == []:
            continue
        values[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return values


def write(artifact, facts) -> int:
    import onnx

    path = artifact.path
    before = path.stat().st_size
    proto = onnx.load(str(path), load_external_data=False)
    kept = [entry for entry in proto.metadata_props if entry.key not in KEYS]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in props(facts).items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = facts.description
    path.write_bytes(proto.SerializeToString(deterministic=True))
    return path.stat().st_size - before


def parse(values: dict[str, str], doc_string: str | None = None) -> dict:
    """metadata_props as edgezoo wrote them, JSON values decoded; other keys kept as text."""
    facts = {}
    for key, value in values.items():
        if key in ("labels", "images", "preprocessing"):
            try:
                facts[key] = json.loads(value)
            except ValueError:
                facts[key] = value
        else:
            facts[key] = value
    if doc_string:
        facts.setdefault("description", doc_string)
    return facts


def read(path: Path) -> dict | None:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx' own errors
        raise CorruptModelError(f"{path} is not an ONNX model: {exc}") from exc
    values = {entry.key: entry.value for entry in proto.metadata_props}
    if not values and not proto.doc_string:
        return None
    return parse(values, proto.doc_string)
