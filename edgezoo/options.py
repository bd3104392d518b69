"""The options that flow from the CLI (or a build script) into the pipeline: one frozen, validated object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgezoo.converter.base import Quantization
from edgezoo.errors import UsageError


@dataclass(frozen=True)
class ConvertOptions:
    targets: tuple[str, ...] = ("phone",)  # built-in names, profile paths, or "all"
    out_dir: Path = Path("build")
    quantize: Quantization | None = None  # overrides each profile's quantisation
    calibration: Path | None = None  # .npz/.npy of preprocessed model inputs
    force: bool = False  # replace existing output folders
    seed: int = 0
    max_calibration_samples: int = 500
    trust_model: bool = False

    def __post_init__(self):
        # Accept the plain values a caller naturally writes, and keep the typed form.
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if not targets:
            raise UsageError("no target given; use --target phone (or another profile name or path).")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.calibration is not None:
            object.__setattr__(self, "calibration", Path(self.calibration))
        if self.quantize is not None and not isinstance(self.quantize, Quantization):
            try:
                object.__setattr__(self, "quantize", Quantization(self.quantize))
            except ValueError:
                known = ", ".join(q.value for q in Quantization)
                raise UsageError(f"unknown quantization '{self.quantize}'; use one of {known}.") from None
        if self.max_calibration_samples < 1:
            raise UsageError("max_calibration_samples must be at least 1.")
