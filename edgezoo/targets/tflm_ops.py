"""The ops TensorFlow Lite Micro implements, read from the installed tflite-micro package itself.

The package's `_runtime.so` exports one `tflite::micro::Register_<OP>()` function per kernel it
links in. Their names are read from the library's symbol strings (what `nm -D` lists), so the
list follows whatever tflite-micro version is installed instead of a table kept by hand. Names
that are builtin operators of the TFLite schema are the supported builtin ops; a few TFLM kernels
serve custom ops instead (CUSTOM_OPS).
"""

from __future__ import annotations

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
    from edgezoo.converter.tflite_flatbuffer import builtin_op_names

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
