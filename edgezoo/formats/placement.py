"""Where each op of an artifact runs: per op, the backend that takes it (or why none does), and the partitions
a delegating runtime would cut the graph into. One module per backend, the same small interface in each:

    place(artifact) -> Placement      # artifact: the file's path (or a .tflite's or .onnx's bytes)

Each format's placers are in its folder (formats/<format>/placement.py; a .tflite has a second, placement_tflm.py, for a
microcontroller); a module that places for two backends has one function per backend (tfjs: place_webgl, place_wasm).
A new backend: one function plus one entry in PLACERS (loaded lazily, like the artifact readers).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgezoo.errors import TargetConstraintError, UsageError

# Artifact format (or "tflm", the .tflite of a microcontroller target) -> its placers: (format, module of its folder, function).
PLACERS = {
    "tflite": (("tflite", "placement", "place"),),
    "tflm": (("tflite", "placement_tflm", "place"),),
    "onnx": (("onnx", "placement", "place"),),
    "tfjs": (("tfjs", "placement", "place_webgl"), ("tfjs", "placement", "place_wasm")),
}

ACCEPTED_BY_DEFAULT = "fallback"  # placed_on for an op a delegate rejects: the runtime's default (CPU) kernels


class PlacementRequirementError(TargetConstraintError):
    """A model or artifact whose placement breaks its profile's requirement (require_gpu_delegate, max_gpu_partitions:
    edgezoo/targets/constraints.py); carries what --quantize auto and the float fallback report of the trade."""

    def __init__(self, message: str, summary: str = "", size_bytes: int | None = None):
        super().__init__(message)
        self.summary = summary  # Placement.summary() of the artifact refused: "GPU delegate: 6 of 7 ops, 2 partitions"
        self.size_bytes = size_bytes  # None when refused before conversion


@dataclass(frozen=True)
class OpPlacement:
    index: int  # position in the execution plan (TFLite operator index, ONNX node index)
    op: str  # CONV_2D, Conv, ...
    placed_on: str  # the backend that takes it ("gpu", "tflm", "CPUExecutionProvider"), or "fallback" / "none"
    reason: str = ""  # why the backend rejects it, in the backend's own words; empty when accepted
    dtypes: tuple[str, ...] = ()  # the op's runtime (non-constant) input dtypes, then its output dtypes
    shapes: tuple[tuple[int, ...], ...] = ()  # the same tensors' shapes (-1 where dynamic)
    name: str = ""  # the node or first output tensor's name, which carries the layer's name

    @property
    def accepted(self) -> bool:
        return not self.reason and self.placed_on not in (ACCEPTED_BY_DEFAULT, "none")

    def to_json(self) -> dict:
        return {"index": self.index, "op": self.op, "name": self.name, "placed_on": self.placed_on,
                "accepted": self.accepted, "reason": self.reason or None,
                "dtypes": list(self.dtypes), "shapes": [list(s) for s in self.shapes]}


@dataclass(frozen=True)
class Placement:
    backend: str  # what takes the accepted ops: "GPU delegate", "TFLM kernels", "ONNX Runtime"
    ops: tuple[OpPlacement, ...]
    partitions: int | None  # delegated subgraphs; None where the backend does not partition (TFLM runs all or nothing)
    source: str = ""  # where the verdicts come from (tool and version, or rule table), so a reader can judge them
    notes: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return sum(op.accepted for op in self.ops)

    @property
    def rejected(self) -> tuple[OpPlacement, ...]:
        return tuple(op for op in self.ops if not op.accepted)

    def summary(self) -> str:
        """'GPU delegate: 143 of 150 ops, 2 partitions'."""
        text = f"{self.backend}: {self.accepted} of {len(self.ops)} ops"
        if self.partitions is not None:
            text += f", {self.partitions} partition{'s' if self.partitions != 1 else ''}"
        return text

    def to_json(self) -> dict:
        return {"backend": self.backend, "summary": self.summary(), "accepted": self.accepted, "total": len(self.ops),
                "partitions": self.partitions, "source": self.source, "notes": list(self.notes),
                "rejected": [op.to_json() for op in self.rejected], "ops": [op.to_json() for op in self.ops],
                **self.details}


def placers(format_name: str) -> tuple[Callable[[str | Path | bytes], Placement], ...]:
    try:
        names = PLACERS[format_name]
    except KeyError:
        raise UsageError(f"no op placement for format '{format_name}'. Known formats: {', '.join(PLACERS)}.") from None
    from edgezoo.formats import part

    return tuple(getattr(part(format_name, module), function) for format_name, module, function in names)


def place(format_name: str, artifact: str | Path | bytes) -> tuple[Placement, ...]:
    """Every placement known for an artifact of that format (one per backend)."""
    return tuple(placer(artifact) for placer in placers(format_name))


def key_for(format_name: str, runtime: str) -> str:
    """The PLACERS key of a target's artifact: "tflm" for a .tflite that runs on TFLM, else the artifact's format."""
    return "tflm" if runtime == "tflm" else format_name


def report_section(key: str, artifact: str | Path) -> dict:
    """report.json's `placement`: the key placed for and one entry per backend (Placement.to_json)."""
    return {"placed_for": key, "backends": [placement.to_json() for placement in place(key, artifact)]}


def gpu_rejections_planned(nodes) -> list[tuple[object, str]]:
    """(OpNode, reason) for the planned TFLite ops (before conversion) that the GPU delegate's op rule rejects."""
    from edgezoo.formats import part

    return part("tflite", "placement").planned_rejections(nodes)


def read_bytes(artifact: str | Path | bytes) -> bytes:
    if isinstance(artifact, (bytes, bytearray)):
        return bytes(artifact)
    path = Path(artifact)
    if not path.is_file():
        raise UsageError(f"no artifact at '{artifact}': the file does not exist.")
    return path.read_bytes()


@contextlib.contextmanager
def captured_fd(fd: int):
    """Text written to a file descriptor (C++ code writes to fd 1 or 2 directly, past Python's sys.stdout and
    sys.stderr), and to the matching Python stream, while the block runs. Yields a list that then holds the text."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    saved = os.dup(fd)
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        python_stream = _Collect()
        redirect = contextlib.redirect_stdout if fd == 1 else contextlib.redirect_stderr
        try:
            with redirect(python_stream):  # print() under pytest writes to a replaced sys.stdout, not to fd 1
                yield text
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text.append(python_stream.getvalue() + capture.read().decode("utf-8", "replace"))


class _Collect:
    def __init__(self):
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "".join(self._parts)

