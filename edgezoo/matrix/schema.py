"""A build matrix: models x targets x option variants, read strictly from a TOML file (docs/build.md is the schema).

    targets = ["phone", "onnx"]               # every model's targets (a model may give its own)
    [options]                                 # convert options of every cell
    seed = 0
    [variants.int8]                           # each cell once per variant, in <target>-int8/
    quantize = "int8"
    [[models]]
    source = "digits-cnn"
    calibration = "data/digits.npz"           # paths are relative to the matrix file

Unknown keys and wrong values are errors, all reported at once, each with where it is (`models[2].options`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgezoo._tables import type_name, type_ok, unknown_keys
from edgezoo.errors import UsageError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_VARIANT = "default"  # a variant of this name adds no suffix to its folders

# Convert options a matrix may set at the top, per model or per variant: key -> (type, what it is).
OPTION_KEYS: dict[str, tuple[type | tuple, str]] = {
    "quantize": (str, "float32, float16, dynamic-int8, int8, int16x8 or auto: overrides each profile's quantisation"),
    "seed": (int, "seed for data sampling"),
    "max_calibration_samples": (int, "calibration samples to use"),
    "heldout_fraction": (float, "share of the data kept apart for the parity check"),
    "image_resize": (str, "how calibration images are resized (bilinear, nearest, bicubic, area)"),
    "prune": (float, "magnitude-prune to this sparsity (0..1)"),
    "keep_float": (list, "int8: layers left in float"),
    "auto_fallback": (bool, "int8: move the worst layers back to float when parity misses"),
    "explain_quantization": (bool, "measure each layer's error even when parity passes"),
    "auto_prefer": (str, "auto: keep the smallest passing candidate (size) or the smallest full-integer one (integer)"),
    "suggest": (bool, "a cell that misses its tolerance: measure the other quantisations for one that passes"),
    "input_shapes": (dict, "input name -> shape (batch first), fixed before conversion"),
}
MODEL_KEYS: dict[str, tuple[type | tuple, str]] = {
    "source": (str, "a bundled model, keras:NAME, hub:HANDLE, or a path (relative to the matrix file)"),
    "name": (str, "the output folder OUT/<name>/ (default: the model's own name)"),
    "targets": (list, "this model's targets, instead of the top-level list"),
    "variants": (list, "the variants this model is built in (default: all)"),
    "calibration": (str, "calibration data: an image folder, .npz/.npy or .tfrecord (relative to the matrix file)"),
    "memory": ((str, int), "the expected peak memory of one of its jobs (e.g. 3G), for admission; default: estimated"),
    "trust_model": (bool, "run the model's own code when loading it (see docs/security.md)"),
    "options": (dict, "convert options of this model's cells"),
}
TOP_KEYS: dict[str, tuple[type | tuple, str]] = {
    "out": (str, "the output folder (relative to the matrix file; --out overrides it)"),
    "targets": (list, "target profile names or .toml paths (relative to the matrix file)"),
    "options": (dict, "convert options of every cell"),
    "variants": (dict, "named option sets; every cell is built once per variant"),
    "models": (list, "the models, one [[models]] table each"),
}


@dataclass(frozen=True)
class ModelEntry:
    source: str
    name: str | None
    targets: tuple[str, ...]
    variants: tuple[str, ...]
    calibration: Path | None
    memory: str | int | None
    trust_model: bool
    options: dict = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class Matrix:
    path: Path | None
    out: Path | None
    models: tuple[ModelEntry, ...]
    variants: dict[str, dict]  # name -> options; {"default": {}} when the matrix declares none


def _check_table(table, schema: dict, where: str, problems: list[str]) -> dict:
    if not isinstance(table, dict):
        problems.append(f"{where}: must be a table, got {type(table).__name__}.")
        return {}
    problems += unknown_keys(table, schema, where)
    good = {}
    for key, value in table.items():
        if key not in schema:
            continue
        kind, _ = schema[key]
        if not type_ok(value, kind):
            problems.append(f"{where}.{key}: must be {type_name(kind)}, got {value!r}.")
        else:
            good[key] = value
    return good


def _strings(value: list, where: str, problems: list[str]) -> tuple[str, ...]:
    if not all(isinstance(item, str) and item for item in value):
        problems.append(f"{where}: must be a list of non-empty strings, got {value!r}.")
        return ()
    return tuple(value)


def _options(table, where: str, problems: list[str]) -> dict:
    options = _check_table(table, OPTION_KEYS, where, problems)
    if "keep_float" in options:
        options["keep_float"] = _strings(options["keep_float"], f"{where}.keep_float", problems)
    if "input_shapes" in options:
        shapes = {}
        for name, shape in options["input_shapes"].items():
            if isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
                shapes[name] = tuple(shape)
            else:
                problems.append(f"{where}.input_shapes.{name}: must be a list of positive integers (batch first), got {shape!r}.")
        options["input_shapes"] = tuple(shapes.items())
    return options


def _relative(value: str, base: Path | None) -> str:
    """A path-like value relative to the matrix file; names (digits-cnn, keras:X, phone) stay as they are."""
    if base is None or ":" in value or not ("/" in value or value.endswith((".toml", ".npz", ".npy", ".tfrecord", ".keras", ".h5", ".hdf5"))):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_matrix(data: dict, path: Path | None = None) -> Matrix:
    """A Matrix from a parsed TOML table (path: the file, for relative paths and messages)."""
    where_file = str(path) if path else "matrix"
    problems: list[str] = []
    base = path.parent if path else None
    top = _check_table(data, TOP_KEYS, where_file, problems)
    targets = _strings(top.get("targets", []), f"{where_file}: targets", problems)
    top_options = _options(top.get("options", {}), f"{where_file}: options", problems)
    variants: dict[str, dict] = {}
    for name, table in top.get("variants", {}).items():
        if not NAME.match(name):
            problems.append(f"{where_file}: variants.{name}: a variant name must be letters, digits, '.', '_' or '-'.")
        variants[name] = _options(table, f"{where_file}: variants.{name}", problems)
    if not variants:
        variants = {DEFAULT_VARIANT: {}}
    entries = []
    models = top.get("models", [])
    if not models:
        problems.append(f"{where_file}: no models; add a [[models]] table with source = \"...\" for each model.")
    for number, table in enumerate(models, 1):
        named = f" ({table['source']})" if isinstance(table, dict) and isinstance(table.get("source"), str) else ""
        where = f"{where_file}: models[{number}]{named}"
        entry = _check_table(table, MODEL_KEYS, where, problems)
        if "source" not in entry:
            problems.append(f"{where}: missing 'source' (a bundled model, keras:NAME, hub:HANDLE or a path).")
            continue
        own_targets = _strings(entry["targets"], f"{where}.targets", problems) if "targets" in entry else targets
        if not own_targets:
            problems.append(f"{where}: no targets; give targets = [...] at the top of the matrix or in this model.")
        wanted = _strings(entry["variants"], f"{where}.variants", problems) if "variants" in entry else tuple(variants)
        for name in wanted:
            if name not in variants:
                problems.append(f"{where}.variants: unknown variant '{name}'; declared: {', '.join(variants)}.")
        if "name" in entry and not NAME.match(entry["name"]):
            problems.append(f"{where}.name: must be letters, digits, '.', '_' or '-', got {entry['name']!r}.")
        if entry.get("memory") is not None:
            from edgezoo.jobs.memory import parse_size

            try:
                parse_size(entry["memory"], f"{where}.memory")
            except UsageError as exc:
                problems.append(str(exc))
        options = {**top_options, **_options(entry.get("options", {}), f"{where}.options", problems)}
        entries.append(ModelEntry(
            source=_relative(entry["source"], base), name=entry.get("name"),
            targets=tuple(_relative(t, base) for t in own_targets), variants=wanted,
            calibration=Path(_relative(entry["calibration"], base if base else Path("."))) if "calibration" in entry else None,
            memory=entry.get("memory"), trust_model=entry.get("trust_model", False), options=options, where=where))
    if problems:
        raise UsageError("invalid build matrix:\n  " + "\n  ".join(problems))
    out = Path(top["out"]).expanduser() if "out" in top else None
    if out is not None and base is not None and not out.is_absolute():
        out = base / out
    return Matrix(path, out, tuple(entries), variants)


def load_matrix(path: Path | str) -> Matrix:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"build matrix '{path}' does not exist.") from None
    except OSError as exc:
        raise UsageError(f"cannot read build matrix {path}: {exc.strerror}.") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"build matrix {path} is not valid TOML: {exc}.") from exc
    return parse_matrix(data, path)
