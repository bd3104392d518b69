"""Options written into a source string: `keras:MobileNetV2?alpha=0.35&input_size=96&weights=none`.

The options that change which model is built live in the source string, so one string names the
model completely (in reports, in `zoo info`, in a build script). Loading policy (trust, offline,
cache, mirror) lives in LoadOptions instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

from edgezoo.errors import CorruptModelError, UsageError
from edgezoo.paths import user_path


def split_options(source: str, known: set[str]) -> tuple[str, dict[str, str]]:
    """`NAME?k=v&k2=v2` -> (NAME, {k: v}); only keys in `known` are taken, the rest stay in NAME.

    Keeping unknown keys in place lets a URL keep a query of its own (hub sources).
    """
    base, sep, query = source.partition("?")
    if not sep:
        return source, {}
    taken, kept = {}, []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in known:
            taken[key] = value
        else:
            kept.append(f"{key}={value}")
    return (base + ("?" + "&".join(kept) if kept else "")), taken


def parse_options(raw: dict[str, str], parsers: dict[str, Callable[[str], Any]], where: str) -> dict[str, Any]:
    parsed = {}
    for key, value in raw.items():
        try:
            parsed[key] = parsers[key](value)
        except (ValueError, KeyError) as exc:
            raise UsageError(f"{where}: bad value '{value}' for option '{key}' ({exc}).") from None
    return parsed


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_size(value: str) -> tuple[int, int]:
    """`96` -> (96, 96); `96x128` -> (96, 128) as (height, width)."""
    parts = [int(p) for p in value.lower().replace(",", "x").split("x")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError("expected SIZE or HEIGHTxWIDTH")
    return parts[0], parts[1]


def parse_shape(value: str) -> tuple[int, ...]:
    """`224,224,3` or `224x224x3` -> (224, 224, 3), without the batch dimension."""
    parts = tuple(int(p) for p in value.lower().replace("x", ",").split(",") if p)
    if not parts or min(parts) < 1:
        raise ValueError("expected dimensions such as 224,224,3")
    return parts


def parse_sha256(value: str) -> str:
    value = value.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("expected 64 hex digits")
    return value


def read_labels(path: Path | str) -> tuple[str, ...]:
    """Class names from a text file (one a line), a JSON list, or a Keras-style ImageNet class index
    (`{"0": ["n01440764", "tench"], ...}`)."""
    path = user_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the labels file {path}: {exc.strerror or exc}.") from exc
    if path.suffix != ".json":
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return tuple(str(item) for item in data)
        return tuple(str(data[str(i)][-1]) for i in range(len(data)))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CorruptModelError(
            f"the labels file {path} is neither a JSON list nor a class index {{\"0\": [id, name], ...}}: {exc}."
        ) from exc
