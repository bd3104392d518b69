"""Target profiles: the contract with a device, read strictly from TOML data files.

A profile names the format, the runtime that validates it, the default quantisation, budgets,
and the parity tolerances per quantisation mode. Unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgezoo.converter import options_class
from edgezoo.converter.base import FormatOptions, Quantization
from edgezoo.errors import TargetProfileError, UsageError

BUILTIN_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Tolerance:
    """Limits an artifact's outputs must meet against the original; a None limit is not checked."""

    max_abs_error: float | None = None
    min_cosine: float | None = None
    min_snr_db: float | None = None
    min_top1_agreement: float | None = None

    def violations(self, metrics: dict[str, float | None]) -> list[str]:
        found = []
        for limit_name, value in dataclasses.asdict(self).items():
            if value is None:
                continue
            metric_name = limit_name.removeprefix("min_")
            measured = metrics.get(metric_name)
            if measured is None:
                continue
            # Written as "not within" so that a NaN measurement is a violation, never a pass.
            if limit_name.startswith("min_") and not measured >= value:
                found.append(f"{metric_name} {measured:.6g} < {value:g}")
            elif not limit_name.startswith("min_") and not measured <= value:
                found.append(f"{metric_name} {measured:.6g} > {value:g}")
        return found


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    format: str
    runtime: str
    quantization: Quantization
    integer_io: bool = False
    max_model_bytes: int | None = None
    tolerances: dict[Quantization, Tolerance] = field(default_factory=dict)
    format_options: FormatOptions = field(default_factory=FormatOptions)  # the converter's own settings
    path: Path | None = None

    def tolerance_for(self, quantization: Quantization) -> Tolerance:
        if quantization not in self.tolerances:
            raise TargetProfileError(
                f"target '{self.name}' defines no parity tolerance for {quantization.value} "
                f"(it has: {', '.join(q.value for q in self.tolerances)}). Add [tolerances.{quantization.value}] to {self.path}."
            )
        return self.tolerances[quantization]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "format": self.format,
            "runtime": self.runtime,
            "quantization": self.quantization.value,
            "integer_io": self.integer_io,
            "max_model_bytes": self.max_model_bytes,
            "tolerances": {q.value: dataclasses.asdict(t) for q, t in self.tolerances.items()},
            "format_options": self.format_options.to_json(),
        }


_TOP_KEYS = {"name", "description", "format", "runtime", "quantization", "integer_io", "max_model_bytes", "tolerances", "format_options"}


def _strict_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TargetProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(allowed))}.")


def _quantization(value: str, where: str) -> Quantization:
    try:
        return Quantization(value)
    except ValueError:
        raise TargetProfileError(f"{where}: unknown quantization '{value}'; use one of {', '.join(q.value for q in Quantization)}.") from None


def load_profile_file(path: Path) -> TargetProfile:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TargetProfileError(f"cannot read target profile {path}: {exc.strerror}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TargetProfileError(f"target profile {path} is not valid TOML: {exc}.") from exc
    _strict_keys(data, _TOP_KEYS, str(path))
    for required in ("name", "format", "runtime", "quantization"):
        if required not in data:
            raise TargetProfileError(f"target profile {path} lacks the required key '{required}'.")
    tolerance_keys = {f.name for f in dataclasses.fields(Tolerance)}
    tolerances = {}
    for mode, table in data.get("tolerances", {}).items():
        where = f"{path} [tolerances.{mode}]"
        _strict_keys(table, tolerance_keys, where)
        tolerances[_quantization(mode, where)] = Tolerance(**{k: float(v) for k, v in table.items()})
    try:
        format_options_class = options_class(data["format"])
    except UsageError as exc:
        raise TargetProfileError(f"{path}: {exc}") from exc
    return TargetProfile(
        name=data["name"],
        description=data.get("description", ""),
        format=data["format"],
        runtime=data["runtime"],
        quantization=_quantization(data["quantization"], str(path)),
        integer_io=bool(data.get("integer_io", False)),
        max_model_bytes=data.get("max_model_bytes"),
        tolerances=tolerances,
        format_options=format_options_class.from_table(data.get("format_options", {}), f"{path} [format_options]"),
        path=path,
    )


def builtin_profiles() -> dict[str, Path]:
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.toml"))}


def resolve_profile(name_or_path: str) -> TargetProfile:
    """A built-in profile by name, or a user's profile by path."""
    builtins = builtin_profiles()
    if name_or_path in builtins:
        return load_profile_file(builtins[name_or_path])
    path = Path(name_or_path)
    if path.suffix == ".toml" or "/" in name_or_path:
        if not path.exists():
            raise TargetProfileError(f"target profile file '{name_or_path}' does not exist.")
        return load_profile_file(path)
    raise TargetProfileError(f"unknown target '{name_or_path}'. Built-in targets: {', '.join(builtins)}; or give a path to a .toml profile.")
