"""The interface every output format shares: `convert(model, request, workdir) -> Artifact`."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from edgezoo.calibration import CalibrationSet
from edgezoo.errors import TargetProfileError, UsageError


class Quantization(str, enum.Enum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_INT8 = "dynamic-int8"  # int8 weights, float activations
    INT8 = "int8"  # full integer: int8 weights and activations
    INT16X8 = "int16x8"  # int16 activations, int8 weights

    @property
    def needs_calibration(self) -> bool:
        return self in (Quantization.INT8, Quantization.INT16X8)


class QuantizationRequest(str, enum.Enum):
    """What a user may ask for beyond an artifact's own quantisation: a choice edgezoo makes. An artifact always records
    the Quantization it really has."""

    AUTO = "auto"  # the smallest artifact that meets the target's tolerance (edgezoo.quantize.auto)


class AutoPreference(str, enum.Enum):
    """What `--quantize auto` keeps among the candidates that pass (edgezoo.quantize.auto)."""

    SIZE = "size"  # the smallest passing artifact, whatever it computes in
    INTEGER = "integer"  # the smallest full-integer one (int8, int16x8) when one passes: NPUs and DSPs run integer ops only


def requested_quantization(value) -> "Quantization | QuantizationRequest":
    """A --quantize value or a profile's `quantization`: a Quantization, or auto; anything else is a UsageError."""
    if isinstance(value, (Quantization, QuantizationRequest)):
        return value
    for kind in (Quantization, QuantizationRequest):
        try:
            return kind(value)
        except ValueError:
            pass
    known = ", ".join([q.value for q in Quantization] + [r.value for r in QuantizationRequest])
    raise UsageError(f"unknown quantization '{value}'; use one of {known}.")


@dataclass(frozen=True)
class FormatOptions:
    """A format's own settings (opset, shard size...): each converter module may subclass it as `Options`.

    A target profile gives them in its [format_options] table; fields are checked in `__post_init__`.
    """

    @classmethod
    def from_table(cls, table: dict, where: str) -> "FormatOptions":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise TargetProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(allowed)) or 'none'}.")
        try:
            return cls(**table)
        except UsageError as exc:
            raise TargetProfileError(f"{where}: {exc}") from exc

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def of(request: "ConversionRequest", options_class: type) -> "FormatOptions":
        """The request's format options as a converter's `Options`; None or the empty base mean its defaults."""
        options = request.format_options
        if options is None or type(options) is FormatOptions:
            return options_class()
        if not isinstance(options, options_class):
            raise UsageError(f"format options of type {type(options).__name__} given to a converter that takes {options_class.__qualname__}.")
        return options


@dataclass(frozen=True)
class ConversionRequest:
    """What one conversion is asked to do; built by the pipeline from the options and the target profile."""

    quantization: Quantization = Quantization.FLOAT32
    calibration: CalibrationSet | None = None
    integer_io: bool = False  # full-integer models: int8 inputs and outputs instead of float
    format_options: FormatOptions | None = None  # the converter's own Options; None means its defaults


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

    @classmethod
    def of_model(cls, model, request: "ConversionRequest", *, format: str, files: tuple[Path, ...], ops: tuple[str, ...],
                 details: dict | None = None) -> "Artifact":
        """A converter's artifact: the main file first, tensor names as in the model's signature, and the input shapes it was
        made for (None where a dimension stays dynamic)."""
        return cls(
            format=format,
            path=files[0],
            files=tuple(files),
            quantization=request.quantization,
            input_names=tuple(spec.name for spec in model.inputs),
            output_names=tuple(spec.name for spec in model.outputs),
            ops=tuple(ops),
            details={"input_shapes": {spec.name: list(spec.shape) for spec in model.inputs}, **(details or {})},
        )

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


def layer_of(node_name: str) -> str:
    """The layer a TensorFlow graph node belongs to: `StatefulPartitionedCall/model/conv1/Conv2D` -> `model/conv1`."""
    parts = [part for part in node_name.split("/") if not part.endswith("PartitionedCall")]
    return "/".join(parts[:-1]) or node_name


def describe_ops_by_layer(nodes: list[tuple[str, str]], limit: int = 5) -> str:
    """`[(op, node name), ...]` as `Lgamma (in model/log_gamma), Erfinv (in ...)`, for unsupported-op errors."""
    layers: dict[str, list[str]] = {}
    for op, node_name in nodes:
        found = layers.setdefault(op, [])
        if layer_of(node_name) not in found:
            found.append(layer_of(node_name))
    parts = []
    for op, found in sorted(layers.items()):
        more = f" and {len(found) - limit} more" if len(found) > limit else ""
        parts.append(f"{op} (in {', '.join(found[:limit])}{more})")
    return ", ".join(parts)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for one-line error summaries."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
