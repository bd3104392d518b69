"""Output formats. Each module exposes `FORMAT` and `convert(model, request, workdir) -> Artifact`.

A new format: one module plus one entry in FORMAT_MODULES. Modules load lazily, because each
pulls in its own heavy converter.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgezoo.errors import UsageError

FORMAT_MODULES = {
    "tflite": "edgezoo.converter.tflite",
    "onnx": "edgezoo.converter.onnx",
    "tfjs": "edgezoo.converter.tfjs",
}


def converter_for(format_name: str) -> ModuleType:
    try:
        module_name = FORMAT_MODULES[format_name]
    except KeyError:
        raise UsageError(f"unknown output format '{format_name}'. Known formats: {', '.join(FORMAT_MODULES)}.") from None
    return importlib.import_module(module_name)


def options_class(format_name: str):
    """The format's own settings class (the module's `Options`), or the empty base for a format that has none."""
    from edgezoo.converter.base import FormatOptions

    return getattr(converter_for(format_name), "Options", FormatOptions)
