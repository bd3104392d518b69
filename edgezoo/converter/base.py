"""The interface every output format shares: `convert(model, request, workdir) -> Artifact`."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from edgezoo.calibration import CalibrationSet


class Quantization(str, enum.Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_INT8 = "dynamic-int8"  # int8 weights, float activations
    INT8 = "int8"  # full integer: int8 weights and activations
    INT16X8 = "int16x8"  # int16 activations, int8 weights

    @property
    def needs_calibration(self) -> bool:
        return self in (Quantization.INT8, Quantization.INT16X8)


@dataclass(frozen=True)
class ConversionRequest:
    """What one conversion is asked to do; built by the pipeline from the options and the target profile."""

    quantization: Quantization = Quantization.FLOAT32
    calibration: CalibrationSet | None = None
    integer_io: bool = False  # full-integer models: int8 inputs and outputs instead of float


@dataclass(frozen=True)
class Artifact:
    format: str
    path: Path  # the main file (model.tflite, model.onnx, model.json)
    files: tuple[Path, ...]  # every file that belongs to the artifact, the main file included
    quantization: Quantization
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    ops: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for file in sorted(self.files):
            digest.update(file.read_bytes())
        return digest.hexdigest()

    def relocated(self, old_root: Path, new_root: Path) -> "Artifact":
        """The same artifact after its folder moved (the pipeline renames its temporary folder)."""
        move = lambda p: new_root / p.relative_to(old_root)  # noqa: E731
        return _replace(self, path=move(self.path), files=tuple(move(f) for f in self.files))

    def to_json(self, relative_to: Path | None = None) -> dict:
        show = (lambda p: p.relative_to(relative_to).as_posix()) if relative_to else str
        return {
            "path": show(self.path),
            "files": [show(f) for f in self.files],
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "ops": list(self.ops),
            **self.details,
        }


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)
