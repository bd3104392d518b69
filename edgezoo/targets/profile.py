"""Target profiles: the contract with a device, read strictly from TOML data files.

A profile names the format, the runtime that validates it, the default quantisation, the shape and
op constraints, the flash and RAM budgets, and the parity tolerances per quantisation mode. A
profile may start from another one (`extends = "phone"`, or a path relative to its own file) and
override some keys. Every key is described in SCHEMA below (and in README.md beside this file);
unknown keys and wrong values are errors, all reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgezoo._tables import type_ok, unknown_keys
from edgezoo.formats import options_class
from edgezoo.formats.base import FormatOptions, Quantization, QuantizationRequest
from edgezoo.errors import TargetProfileError, UsageError
from edgezoo.paths import user_path

BUILTIN_DIR = Path(__file__).resolve().parent
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# Each limit a profile may set: the metric it bounds (edgezoo.validate.metrics), the direction, and its range.
LIMITS: dict[str, tuple[str, str, tuple[float | None, float | None]]] = {
    "min_snr_db": ("snr_db", "min", (None, None)),
    "min_cosine": ("cosine", "min", (-1.0, 1.0)),
    "max_relative_l2_error": ("relative_l2_error", "max", (0.0, None)),
    "max_error_over_range": ("max_error_over_range", "max", (0.0, None)),
    "min_top1_agreement": ("top1_agreement", "min", (0.0, 1.0)),
    "min_top5_agreement": ("top5_agreement", "min", (0.0, 1.0)),
    "min_decision_agreement": ("decision_agreement", "min", (0.0, 1.0)),
    "max_abs_error": ("max_abs_error", "max", (0.0, None)),  # absolute: for profiles that know their model's scale
}
# Detectors (edgezoo/validate/detection.py): the artifact's detections matched to the original's by class at IoU >= 0.5.
# Apart from LIMITS: the tensor metrics are what every device check measures, these only the detection check.
DETECTION_LIMITS: dict[str, tuple[str, str, tuple[float | None, float | None]]] = {
    "min_detection_recall": ("detection_recall", "min", (0.0, 1.0)),
    "min_detection_precision": ("detection_precision", "min", (0.0, 1.0)),
    "min_matched_iou": ("mean_matched_iou", "min", (0.0, 1.0)),
    "max_score_difference": ("max_score_difference", "max", (0.0, 1.0)),
}
# Settings of a tolerance table that bound no metric: how the detection check counts (see docs/tolerances.md).
SETTINGS: dict[str, tuple[float | None, float | None]] = {
    "detection_score_margin": (0.0, 1.0),  # unmatched detections scored below threshold + margin are not misses
}
ALL_LIMITS = {**LIMITS, **DETECTION_LIMITS}
TOLERANCE_RANGES = {**{limit: bounds for limit, (_, _, bounds) in ALL_LIMITS.items()}, **SETTINGS}


@dataclass(frozen=True)
class Tolerance:
    """Limits an artifact's outputs must meet against the original; a None limit is not checked.

    The built-in profiles set only scale-free limits (docs/tolerances.md says where each number comes from);
    a limit whose metric does not apply to an output (top-1 on a regression head) is not checked there.
    """

    min_snr_db: float | None = None
    min_cosine: float | None = None
    max_relative_l2_error: float | None = None
    max_error_over_range: float | None = None
    min_top1_agreement: float | None = None
    min_top5_agreement: float | None = None
    min_decision_agreement: float | None = None
    max_abs_error: float | None = None
    min_detection_recall: float | None = None
    min_detection_precision: float | None = None
    min_matched_iou: float | None = None
    max_score_difference: float | None = None
    detection_score_margin: float | None = None

    def without_detection_limits(self) -> "Tolerance":
        """The limits that apply to a model judged tensor by tensor (a profile's tables also hold its detectors' limits)."""
        return dataclasses.replace(self, **{name: None for name in (*DETECTION_LIMITS, *SETTINGS)})

    def violations(self, metrics: dict[str, float | None]) -> list[str]:
        found = []
        for limit, value in dataclasses.asdict(self).items():
            if value is None or limit in SETTINGS:
                continue
            metric_name, direction, _ = ALL_LIMITS[limit]
            measured = metrics.get(metric_name)
            if measured is None:
                continue
            # Written as "not within" so that a NaN measurement is a violation, never a pass.
            if direction == "min" and not measured >= value:
                found.append(f"{metric_name} {measured:.6g} < {value:g}")
            elif direction == "max" and not measured <= value:
                found.append(f"{metric_name} {measured:.6g} > {value:g}")
        return found


@dataclass(frozen=True)
class Key:
    """One key of the profile schema: its TOML type, default and meaning."""

    name: str
    kind: type  # str, int, float, bool or dict (a table)
    doc: str
    default: object = None
    required: bool = False


SCHEMA: tuple[Key, ...] = (
    Key("name", str, "the target's name, used for the output folder OUT/<model>/<name>/; a user profile without one takes its file name", required=True),
    Key("extends", str, "a built-in profile name, or a path relative to this file, whose keys this profile starts from (not inherited: name)"),
    Key("description", str, "one line for `edgezoo targets list`", default=""),
    Key("format", str, "output format: one of edgezoo.formats.FORMATS (tflite, onnx, tfjs)", required=True),
    Key("runtime", str, "runtime that runs the artifact for the parity check: a key of edgezoo.formats.RUNTIMES (litert, tflm, ...)", required=True),
    Key("quantization", str, "default quantisation: float32, float16, dynamic-int8, int8, int16x8, or auto (the smallest that meets the tolerance; `--quantize` overrides it)", required=True),
    Key("integer_io", bool, "full-integer models take and return int8/int16 tensors instead of float", default=False),
    Key("fixed_batch", int, "fix the batch dimension to this size before conversion (devices without dynamic shapes)"),
    Key("input_shapes", dict, "fix inputs to these shapes before conversion, batch first: { NAME = [1, 48, 64, 3] } (--input-shape overrides an input's shape)"),
    Key("op_set", str, "the ops the device's runtime has (a key of OP_SETS: tflm); checked before conversion and on the artifact"),
    Key("max_model_bytes", int, "flash or storage budget: the artifact's size in bytes"),
    Key("max_arena_bytes", int, "RAM budget: the tensor arena in bytes, measured on the runtime, safety margin included"),
    Key("arena_margin", float, "safety margin added to the measured arena, as a fraction (0.1 adds 10%)", default=0.1),
    Key("emit_c_source", bool, "write model_data.cc, model_data.h and model_ops.h next to the artifact, for firmware", default=False),
    Key("allow_float_fallback", bool, "int8: layers may stay in float (--keep-float, automatic fallback when parity misses)", default=True),
    Key("require_gpu_delegate", bool, "tflite: every op must run on the GPU delegate (none falls back to the CPU); a model with an op the delegate rejects is refused before conversion (exit 3), and each artifact is checked again", default=False),
    Key("max_gpu_partitions", int, "tflite: at most this many GPU delegate partitions (graph pieces the delegate takes between ops that fall back to the CPU); checked on each artifact (exit 3)"),
    Key("tolerances", dict, "a [tolerances.<quantization>] table per mode the target accepts, with limits " + ", ".join(TOLERANCE_RANGES)),
    Key("format_options", dict, "the converter's own settings (the format module's Options fields)"),
)
SCHEMA_KEYS = {key.name: key for key in SCHEMA}
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table"}


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    format: str
    runtime: str
    quantization: Quantization | QuantizationRequest  # auto: a choice among the modes with a tolerance table
    integer_io: bool = False
    fixed_batch: int | None = None
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (input name, shape) fixed before conversion
    op_set: str | None = None
    max_model_bytes: int | None = None
    max_arena_bytes: int | None = None
    arena_margin: float = 0.1
    emit_c_source: bool = False
    allow_float_fallback: bool = True  # false where the device runs integer ops only
    require_gpu_delegate: bool = False  # every op on the GPU delegate
    max_gpu_partitions: int | None = None  # at most this many GPU delegate partitions
    tolerances: dict[Quantization, Tolerance] = field(default_factory=dict)
    format_options: FormatOptions = field(default_factory=FormatOptions)  # the converter's own settings
    path: Path | None = None
    extends: tuple[str, ...] = ()  # the profiles this one starts from, nearest first

    @property
    def requires_gpu_placement(self) -> bool:
        """Whether artifacts are checked against the GPU delegate's placement (require_gpu_delegate, max_gpu_partitions)."""
        return self.require_gpu_delegate or self.max_gpu_partitions is not None

    @property
    def needs_arena(self) -> bool:
        """Whether the runtime must measure the tensor arena (a RAM budget, or C sources that state it)."""
        return self.max_arena_bytes is not None or self.emit_c_source

    def tolerance_for(self, quantization: Quantization) -> Tolerance:
        if quantization not in self.tolerances:
            raise TargetProfileError(
                f"target '{self.name}' defines no parity tolerance for {quantization.value} "
                f"(it accepts: {', '.join(q.value for q in self.tolerances)}). Choose one of those with --quantize, "
                f"or add [tolerances.{quantization.value}] to a profile that extends {self.path}."
            )
        return self.tolerances[quantization]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "extends": list(self.extends),
            "format": self.format,
            "runtime": self.runtime,
            "quantization": self.quantization.value,
            "integer_io": self.integer_io,
            "fixed_batch": self.fixed_batch,
            "input_shapes": {name: list(shape) for name, shape in self.input_shapes},
            "op_set": self.op_set,
            "max_model_bytes": self.max_model_bytes,
            "max_arena_bytes": self.max_arena_bytes,
            "arena_margin": self.arena_margin,
            "emit_c_source": self.emit_c_source,
            "allow_float_fallback": self.allow_float_fallback,
            "require_gpu_delegate": self.require_gpu_delegate,
            "max_gpu_partitions": self.max_gpu_partitions,
            "tolerances": {q.value: {k: v for k, v in dataclasses.asdict(t).items() if v is not None} for q, t in self.tolerances.items()},
            "format_options": self.format_options.to_json(),
        }


# --- reading and inheritance --------------------------------------------------------------------


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetProfileError(f"target profile file '{path}' does not exist.") from None
    except OSError as exc:
        raise TargetProfileError(f"cannot read target profile {path}: {exc.strerror}.") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetProfileError(f"target profile {path} is not valid TOML: {exc}.") from exc


def _parent_path(value: object, child: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise TargetProfileError(f"{child}: 'extends' must be a built-in profile name or a path to a .toml profile.")
    builtins = builtin_profiles()
    if value in builtins:
        return builtins[value]
    candidate = user_path(child.parent / value)
    if candidate.suffix == ".toml" or "/" in value:
        if not candidate.exists():
            raise TargetProfileError(f"{child}: 'extends' names {value}, but {candidate} does not exist.")
        return candidate
    raise TargetProfileError(f"{child}: 'extends' names '{value}', which is no built-in profile ({', '.join(builtins)}) and no .toml path.")


def _merge(parent: dict, child: dict) -> dict:
    """Child keys override the parent's; tables (tolerances, format_options) merge key by key, recursively."""
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolved_table(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, tuple[str, ...]]:
    """The profile's keys with everything it extends merged in, and the chain of profiles it extends."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise TargetProfileError(f"target profiles extend each other in a cycle: {cycle}.")
    data = _read_toml(path)
    data.setdefault("name", path.stem)  # never inherited: the parent's name would clash with the parent's folder
    if "extends" not in data:
        return data, ()
    parent_path = _parent_path(data.pop("extends"), path)
    parent, parent_chain = _resolved_table(parent_path, (*chain, path))
    parent.pop("name")
    label = parent_path.stem if parent_path.parent == BUILTIN_DIR else str(parent_path)
    return _merge(parent, data), (label, *parent_chain)


# --- validation ---------------------------------------------------------------------------------


def _registered(kind: str, value: str, registry: dict) -> list[str]:
    return [] if value in registry else [f"unknown {kind} '{value}'; known: {', '.join(registry)}."]


def _check_values(data: dict) -> list[str]:
    """Problems with values that have the right type but a wrong meaning."""
    from edgezoo.formats import FORMATS, RUNTIMES, runner_for
    from edgezoo.targets.op_check import OP_SETS

    problems = []
    if not NAME_PATTERN.match(data["name"]):
        problems.append(f"name '{data['name']}' may hold only letters, digits, '.', '_' and '-'.")
    problems += _registered("format", data["format"], FORMATS)
    problems += _registered("runtime", data["runtime"], RUNTIMES)
    if data.get("op_set") is not None:
        problems += _registered("op_set", data["op_set"], OP_SETS)
    if data["quantization"] not in {q.value for q in (*Quantization, *QuantizationRequest)}:
        problems.append(f"unknown quantization '{data['quantization']}'; use one of "
                        f"{', '.join(q.value for q in (*Quantization, *QuantizationRequest))}.")
    for key in ("fixed_batch", "max_model_bytes", "max_arena_bytes", "max_gpu_partitions"):
        if data.get(key) is not None and data[key] < 1:
            problems.append(f"{key} must be at least 1 (got {data[key]}).")
    for name, shape in data.get("input_shapes", {}).items():
        if not isinstance(shape, list) or not shape or not all(type_ok(d, int) and d >= 1 for d in shape):
            problems.append(f"input_shapes: '{name}' must be a list of sizes of at least 1, batch first, e.g. [1, 48, 64, 3] (got {shape!r}).")
        elif data.get("fixed_batch") is not None and shape[0] != data["fixed_batch"]:
            problems.append(f"input_shapes: '{name}' has a batch of {shape[0]}, but fixed_batch is {data['fixed_batch']}.")
    if (data.get("require_gpu_delegate") or data.get("max_gpu_partitions") is not None) and data["format"] != "tflite":
        problems.append(f"require_gpu_delegate and max_gpu_partitions concern TFLite's GPU delegate: they need the tflite format, not {data['format']}.")
    if not 0 <= data.get("arena_margin", 0) <= 10:
        problems.append(f"arena_margin is a fraction between 0 and 10 (got {data['arena_margin']}); 0.1 adds 10%.")
    if data.get("emit_c_source") and data["format"] != "tflite":
        problems.append(f"emit_c_source needs the tflite format (a C array holds a .tflite flatbuffer), not {data['format']}.")
    if (data.get("max_arena_bytes") is not None or data.get("emit_c_source")) and data["runtime"] in RUNTIMES:
        if not hasattr(runner_for(data["runtime"]), "measure_arena"):
            problems.append(f"max_arena_bytes and emit_c_source need a runtime that measures its tensor arena; {data['runtime']} does not.")
    return problems


def _tolerances(table: object, where: str, problems: list[str]) -> dict[Quantization, Tolerance]:
    tolerances = {}
    for mode, limits in table.items():
        here = f"{where} [tolerances.{mode}]"
        try:
            quantization = Quantization(mode)
        except ValueError:
            problems.append(f"{here}: unknown quantization '{mode}'; use one of {', '.join(q.value for q in Quantization)}.")
            continue
        if not isinstance(limits, dict):
            problems.append(f"{here}: must be a table of limits ({', '.join(TOLERANCE_RANGES)}).")
            continue
        problems += unknown_keys(limits, list(TOLERANCE_RANGES), here)
        values = {}
        for limit, value in limits.items():
            if limit not in TOLERANCE_RANGES:
                continue
            low, high = TOLERANCE_RANGES[limit]
            if not type_ok(value, float):
                problems.append(f"{here}: {limit} must be a number (got {value!r}).")
            elif (low is not None and value < low) or (high is not None and value > high):
                problems.append(f"{here}: {limit} = {value} is outside [{low}, {high}].")
            else:
                values[limit] = float(value)
        tolerances[quantization] = Tolerance(**values)
    return tolerances


def profile_from_table(data: dict, path: Path | None, extends: tuple[str, ...] = ()) -> TargetProfile:
    """Validate a profile's (merged) keys; every problem is collected, then reported in one error."""
    where = str(path) if path else "target profile"
    problems = unknown_keys(data, list(SCHEMA_KEYS), where)
    for key in SCHEMA:
        if key.name not in data:
            if key.required:
                problems.append(f"{where}: the required key '{key.name}' is missing ({key.doc}).")
            continue
        if not type_ok(data[key.name], key.kind):
            problems.append(f"{where}: '{key.name}' must be {TYPE_NAMES[key.kind]} (got {data[key.name]!r}).")
    if problems:
        raise TargetProfileError("invalid target profile:\n  " + "\n  ".join(problems))
    problems += [f"{where}: {p}" for p in _check_values(data)]
    tolerances = _tolerances(data.get("tolerances", {}), where, problems)
    quantization = data["quantization"]
    if not problems and quantization == QuantizationRequest.AUTO.value and not tolerances:
        problems.append(f"{where}: quantization = \"auto\" chooses among the modes with a [tolerances.<mode>] table, and there is none.")
    elif not problems and quantization != QuantizationRequest.AUTO.value and Quantization(quantization) not in tolerances:
        problems.append(f"{where}: no [tolerances.{quantization}] table for the profile's own quantisation.")
    format_options = FormatOptions()
    if not problems:
        try:
            format_options = options_class(data["format"]).from_table(data.get("format_options", {}), f"{where} [format_options]")
        except (TargetProfileError, UsageError) as exc:
            problems.append(str(exc))
    if problems:
        raise TargetProfileError("invalid target profile:\n  " + "\n  ".join(problems))
    return TargetProfile(
        name=data["name"],
        description=data.get("description", ""),
        format=data["format"],
        runtime=data["runtime"],
        quantization=QuantizationRequest(quantization) if quantization == QuantizationRequest.AUTO.value else Quantization(quantization),
        integer_io=data.get("integer_io", False),
        fixed_batch=data.get("fixed_batch"),
        input_shapes=tuple((name, tuple(shape)) for name, shape in data.get("input_shapes", {}).items()),
        op_set=data.get("op_set"),
        max_model_bytes=data.get("max_model_bytes"),
        max_arena_bytes=data.get("max_arena_bytes"),
        arena_margin=float(data.get("arena_margin", SCHEMA_KEYS["arena_margin"].default)),
        emit_c_source=data.get("emit_c_source", False),
        allow_float_fallback=data.get("allow_float_fallback", True),
        require_gpu_delegate=data.get("require_gpu_delegate", False),
        max_gpu_partitions=data.get("max_gpu_partitions"),
        tolerances=tolerances,
        format_options=format_options,
        path=path,
        extends=extends,
    )


def load_profile_file(path: Path) -> TargetProfile:
    data, extends = _resolved_table(Path(path))
    return profile_from_table(data, Path(path), extends)


def builtin_profiles() -> dict[str, Path]:
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.toml"), key=lambda p: p.stem)}


def resolve_profile(name_or_path: str) -> TargetProfile:
    """A built-in profile by name, or a user's profile by path."""
    builtins = builtin_profiles()
    if name_or_path in builtins:
        return load_profile_file(builtins[name_or_path])
    path = user_path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path:
        if not path.exists():
            raise TargetProfileError(f"target profile file '{name_or_path}' does not exist.")
        return load_profile_file(path)
    close = difflib.get_close_matches(name_or_path, list(builtins), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise TargetProfileError(f"unknown target '{name_or_path}'.{hint} Built-in targets: {', '.join(builtins)}; or give a path to a .toml profile.")
