"""Artifact formats: one folder per format, the same file names in each, and this one registry.

    formats/<format>/convert.py      convert(model, request, workdir) -> Artifact; FORMAT; an optional Options class
    formats/<format>/metadata.py     write(artifact, facts) -> bytes added; read(path) -> dict | None
    formats/<format>/inspect.py      FORMAT, TARGET, matches(path), read(path) -> ArtifactInfo
    formats/<format>/run_<runtime>.py  RUNTIME; run(artifact, inputs) -> outputs by signature name
    formats/<format>/placement.py    where each op runs on the format's runtimes

TFLite also keeps its converter's helpers (frozen, selective, flatbuffer, precision, repack), the microcontroller's
kernel tables (tflm_ops.py) and C sources (c_array.py); ONNX its quantiser (quantize.py). What all formats share sits
beside the folders: base.py (Quantization, ConversionRequest, Artifact), metadata.py (the facts every format carries),
inspect.py (ArtifactInfo), runtime.py (batching shared by the runners), placement.py (OpPlacement, Placement).

A new format: one folder with those files and one entry in FORMATS. A new runtime: one run_<name>.py in its format's
folder and one entry in RUNTIMES. Code outside a format's folder reaches it through the functions here, or through
the names its package declares (formats/<format>/__init__.py, PUBLIC): never by a path into the folder.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgezoo.registry import lookup

FORMATS = ("tflite", "onnx", "tfjs")
# runtime -> (its format, its runner module in that format's folder)
RUNTIMES = {
    "litert": ("tflite", "run_litert"),
    "tflm": ("tflite", "run_tflm"),
    "onnxruntime": ("onnx", "run_onnxruntime"),
    "tfjs-node": ("tfjs", "run_node"),
    "tfjs-browser": ("tfjs", "run_browser"),
}


def _table(part: str) -> dict[str, str]:
    return {name: f"edgezoo.formats.{name}.{part}" for name in FORMATS}


def part(format_name: str, name: str) -> ModuleType:
    """A format's module by its file name (convert, metadata, inspect, placement...)."""
    return lookup(_table(name), format_name, "artifact format")


def converter_for(format_name: str) -> ModuleType:
    return part(format_name, "convert")


def writer_for(format_name: str) -> ModuleType:
    """The format's metadata module."""
    return part(format_name, "metadata")


def reader(format_name: str) -> ModuleType:
    """The format's inspect module."""
    return part(format_name, "inspect")


def runner_for(runtime: str) -> ModuleType:
    return lookup({name: f"edgezoo.formats.{fmt}.{module}" for name, (fmt, module) in RUNTIMES.items()}, runtime, "runtime")


def options_class(format_name: str):
    """The format's own settings class (its converter's `Options`), or the empty base for a format that has none."""
    from edgezoo.formats.base import FormatOptions

    return getattr(converter_for(format_name), "Options", FormatOptions)


def public_names(package: str, table: dict[str, str]):
    """A format package's `__getattr__`: each public name -> the module of the folder that defines it, imported when first
    used (a module named after itself is the module). What other folders may use of a format is this table."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no public name {name!r} (formats/{package.rsplit('.', 1)[1]}/__init__.py)")
        module = importlib.import_module(f"{package}.{table[name]}")
        return module if table[name] == name else getattr(module, name)

    return __getattr__
