"""Reading an artifact file: one module per format, the same small interface in each.

Each module exposes `FORMAT`, `TARGET` (the built-in profile its artifacts are checked on by default),
`matches(path) -> bool` and `read(path) -> ArtifactInfo`: inputs and outputs (names, shapes, dtypes,
quantisation parameters), ops, the quantisation the file shows, and the metadata and labels it carries.
`edgezoo validate`, `edgezoo inspect`, `edgezoo bench` and the reports read artifacts through here.

Each format's reader is formats/<format>/inspect.py (edgezoo.formats registers it); each loads lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgezoo.errors import UsageError
from edgezoo.formats import FORMATS, reader
from edgezoo.formats.base import Quantization

@dataclass(frozen=True)
class TensorInfo:
    name: str  # the signature's name where the format keeps one
    shape: tuple[int | None, ...]  # None where the dimension is dynamic
    dtype: str  # numpy dtype name
    scale: tuple[float, ...] = ()  # quantisation: one value per tensor, or one per channel along `axis`
    zero_point: tuple[int, ...] = ()
    axis: int | None = None

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    def to_json(self) -> dict:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantized:
            data["quantization"] = {"scale": list(self.scale), "zero_point": list(self.zero_point), "axis": self.axis}
        return data


@dataclass(frozen=True)
class ArtifactInfo:
    """What an artifact file says about itself."""

    format: str
    main: Path
    files: tuple[Path, ...]
    input_tensors: tuple[TensorInfo, ...]
    output_tensors: tuple[TensorInfo, ...]
    ops: tuple[str, ...]
    quantization: Quantization
    metadata: dict | None = None  # as the format's edgezoo.formats.metadata module reads it; None when the file has none
    details: dict = field(default_factory=dict)  # what only this format has (opset, op support per runtime, shards...)

    @property
    def inputs(self) -> dict[str, tuple]:
        """Tensor names -> shapes (None where dynamic), as tensor matching takes them."""
        return {t.name: t.shape for t in self.input_tensors}

    @property
    def outputs(self) -> dict[str, tuple]:
        return {t.name: t.shape for t in self.output_tensors}

    @property
    def labels(self) -> tuple[str, ...] | None:
        labels = (self.metadata or {}).get("labels")
        return tuple(labels) if labels else None

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def to_json(self) -> dict:
        return {
            "format": self.format,
            "path": str(self.main),
            "files": [str(f) for f in self.files],
            "size_bytes": self.size_bytes,
            "quantization_detected": self.quantization.value,
            "inputs": [t.to_json() for t in self.input_tensors],
            "outputs": [t.to_json() for t in self.output_tensors],
            "ops": list(self.ops),
            "labels": list(self.labels) if self.labels else None,
            "metadata": self.metadata,
            **self.details,
        }


@dataclass(frozen=True)
class ArtifactKind:
    """A format's reader as validate and bench use it."""

    format: str
    target: str  # the built-in profile used when none is given
    matches: Callable[[Path], bool]
    inspect: Callable[[Path], ArtifactInfo]


def _kind(format_name: str) -> ArtifactKind:
    module = reader(format_name)
    return ArtifactKind(module.FORMAT, module.TARGET, module.matches, module.read)


ARTIFACT_KINDS = tuple(_kind(name) for name in FORMATS)


def artifact_kind(path: Path) -> ArtifactKind:
    for kind in ARTIFACT_KINDS:
        if kind.matches(path):
            return kind
    raise UsageError(f"'{path}' is not an artifact edgezoo can validate or inspect: give a .tflite, an .onnx, or a TF.js model.json.")


def artifact_path(text: str | Path) -> Path:
    """The artifact's main file; a TF.js model folder means its model.json."""
    path = Path(text)
    if path.is_dir() and (path / "model.json").exists():
        path = path / "model.json"
    if not path.is_file():
        raise UsageError(f"no artifact at '{text}': the file does not exist.")
    return path


def read(path: str | Path) -> ArtifactInfo:
    """Read any artifact edgezoo knows (a .tflite, an .onnx, a TF.js model.json or its folder)."""
    main = artifact_path(path)
    return artifact_kind(main).inspect(main)
