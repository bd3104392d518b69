"""Runtimes that execute an artifact. Each module exposes `RUNTIME` and
`run(artifact, inputs: dict[str, ndarray]) -> dict[str, ndarray]`, outputs keyed by the
signature's output names. A new runtime: one module plus one entry here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgezoo.errors import UsageError

RUNNER_MODULES = {
    "litert": "edgezoo.validate.runners.litert",
    "onnxruntime": "edgezoo.validate.runners.onnxruntime",
    "tfjs-node": "edgezoo.validate.runners.tfjs_node",
    "tfjs-browser": "edgezoo.validate.runners.tfjs_browser",
    "tflm": "edgezoo.validate.runners.tflm",
}


def runner_for(runtime: str) -> ModuleType:
    try:
        return importlib.import_module(RUNNER_MODULES[runtime])
    except KeyError:
        raise UsageError(f"unknown runtime '{runtime}'. Known runtimes: {', '.join(RUNNER_MODULES)}.") from None
