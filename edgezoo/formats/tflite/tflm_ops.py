"""The ops TensorFlow Lite Micro implements, read from the installed tflite-micro package itself.

The package's `_runtime.so` exports one `tflite::micro::Register_<OP>()` function per kernel it
links in. Their names are read from the library's symbol strings (what `nm -D` lists), so the
list follows whatever tflite-micro version is installed instead of a table kept by hand. Names
that are builtin operators of the TFLite schema are the supported builtin ops; a few TFLM kernels
serve custom ops instead (CUSTOM_OPS).

Which dtypes each kernel takes is not written anywhere machine-readable, so it was probed: a one-op
full-integer model per builtin, run on the installed TFLM (scripts/probe_tflm_int8_kernels.py). The
result ships as tflm_int8_kernels.json; `float_only_ops()` reads it, and full-integer models that
need one of those ops are refused before conversion.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from edgezoo.errors import UsageError

OP_SET = "tflm"
DESCRIPTION = "TensorFlow Lite Micro kernels"

# Itanium-mangled `tflite::micro::Register_NAME()` (the micro namespace is optional across versions);
# tflm_signal kernels sit in another namespace and serve signal-processing custom ops only.
_REGISTER_SYMBOL = re.compile(rb"_ZN6tflite(?:5micro)?\d+Register_([A-Z0-9_]+)Ev\x00")

# Custom ops (by the custom code a .tflite carries) that a TFLM kernel implements.
CUSTOM_OPS = {"TFLite_Detection_PostProcess": "DETECTION_POSTPROCESS"}

# MicroMutableOpResolver's Add method names that do not follow the CamelCase rule of the op name.
_RESOLVER_EXCEPTIONS = {
    "PADV2": "PadV2",
    "CUMSUM": "CumSum",
    "BATCH_MATMUL": "BatchMatMul",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
    "DETECTION_POSTPROCESS": "DetectionPostprocess",
}


INT8_KERNELS_FILE = Path(__file__).with_name("tflm_int8_kernels.json")
PROBE_COMMAND = "python scripts/probe_tflm_int8_kernels.py"
# Probe results in tflm_int8_kernels.json: "int8" (runs on int8), "float_only" (runs on float32, not on int8),
# "fails" (neither one-op model ran), "kept_float" (the int8 conversion leaves the op in float32), "not_probed"
# (no tiny TensorFlow graph lowers to it, or the probe was inconclusive; the detail says which).
INT8_STATUSES = ("int8", "float_only", "fails", "kept_float", "not_probed")
# What to use instead of a float-only op in an int8 model, where there is a usual answer.
_INT8_ALTERNATIVES = {
    "LOG": "compute the log (e.g. of a spectrogram) before the model, on the host or with TFLM's signal library, "
           "or approximate it with ops TFLM runs in int8",
}


def runtime_library() -> Path:
    import importlib.util

    try:
        spec = importlib.util.find_spec("tflite_micro.python.tflite_micro._runtime")
    except ImportError as exc:
        spec = None
    if spec is None or not spec.origin:
        raise UsageError("the tflite-micro package (its _runtime library) is not installed; run `make install`.")
    return Path(spec.origin)


@lru_cache(maxsize=None)
def _registered_kernels(library: Path, size: int, mtime: float) -> frozenset[str]:
    """Kernel names from the library's symbol strings; cached per library file version."""
    return frozenset(name.decode() for name in _REGISTER_SYMBOL.findall(library.read_bytes()))


def kernels() -> frozenset[str]:
    library = runtime_library()
    stat = library.stat()
    return _registered_kernels(library, stat.st_size, stat.st_mtime)


def supported_ops() -> frozenset[str]:
    """Builtin op names (CONV_2D...) and custom op codes that TFLM can run."""
    from edgezoo.formats.tflite.flatbuffer import builtin_op_names

    available = kernels()
    builtins = available & builtin_op_names()
    custom = {code for code, kernel in CUSTOM_OPS.items() if kernel in available}
    return frozenset(builtins | custom)


def resolver_method(op: str) -> str:
    """The `tflite::MicroMutableOpResolver` method that registers an op: CONV_2D -> AddConv2D."""
    kernel = CUSTOM_OPS.get(op, op)
    if kernel in _RESOLVER_EXCEPTIONS:
        return "Add" + _RESOLVER_EXCEPTIONS[kernel]
    # Words are capitalised, parts that start with a digit (2D) are kept: MAX_POOL_2D -> AddMaxPool2D.
    return "Add" + "".join(part if part[:1].isdigit() else part.capitalize() for part in kernel.split("_"))


def int8_kernels() -> dict:
    """The probed table: {"tflite_micro_version": ..., "kernels": {op: {"int8": status, "detail": ...}}}."""
    path = INT8_KERNELS_FILE
    stat = path.stat()
    return _read_table(path, stat.st_size, stat.st_mtime)


@lru_cache(maxsize=4)
def _read_table(path: Path, size: int, mtime: float) -> dict:
    return json.loads(path.read_text())


def float_only_ops() -> frozenset[str]:
    """Builtins whose TFLM kernels ran a float32 one-op model but not its int8 twin."""
    return frozenset(op for op, entry in int8_kernels()["kernels"].items() if entry["int8"] == "float_only")


def int8_advice(ops: list[str], layers: list[str]) -> str:
    """What to do about ops TFLM cannot run on int8, in the layers named."""
    alternatives = "".join(f" ({op}: {_INT8_ALTERNATIVES[op]})" for op in ops if op in _INT8_ALTERNATIVES)
    return (
        f"Keep {', '.join(layers)} out of the int8 model (--keep-float {' '.join(layers)}, on a target that allows float "
        f"fallback), replace {', '.join(ops)} with ops TFLM runs in int8{alternatives}, or choose the phone-int8 target "
        "(LiteRT) or a float target such as phone."
    )
