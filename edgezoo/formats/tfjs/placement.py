"""Which kernels of TF.js' WebGL and WASM backends a graph model uses, and the ones a backend lacks.

edgezoo/formats/tfjs/js/kernels_node.mjs runs the model once in Node on the CPU backend (zeros in, dynamic dimensions as
1) under `tf.profile`, which records each kernel as it runs, and lists the kernels each backend package registers.
Kernel names do not depend on the backend (a TF.js op calls the kernel by name), so a kernel the model ran that
WebGL or WASM has not registered is one that backend cannot run. TF.js has no per-kernel fallback (a missing kernel
is an error), so there are no partitions. The run is the model's own graph at zeros: a branch that zeros do not take
(control flow) is not seen.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from edgezoo.errors import ConversionError, RuntimeFailure
from edgezoo.formats.placement import OpPlacement, Placement

BACKENDS = {"webgl": "TF.js WebGL", "wasm": "TF.js WASM"}
SCRIPT = "kernels_node.mjs"
TIMEOUT_SECONDS = 600
_ERROR_MARKER = "edgezoo-harness-error:"


def _model_json(artifact: str | Path) -> Path:
    path = Path(artifact)
    if path.is_dir():
        path = path / "model.json"
    if not path.is_file():
        raise RuntimeFailure(f"no TF.js model.json at '{artifact}'.")
    return path.resolve()


def profile(artifact: str | Path) -> dict:
    """{"tfjs_version", "kernels": [{name, inputShapes, outputShapes}], "registered": {backend: [kernel names]}}."""
    path = _model_json(artifact)
    stat = path.stat()
    return _profile(path, stat.st_size, stat.st_mtime)


@lru_cache(maxsize=8)
def _profile(path: Path, size: int, mtime: float) -> dict:
    from edgezoo.formats.tfjs.run_node import JS_DIR, node_modules

    node_modules()  # a clear error when npm ci has not run
    node = shutil.which("node")
    if node is None:
        raise ConversionError("Node.js is not installed (no `node` on PATH); TF.js kernel placement needs Node 20.")
    try:
        done = subprocess.run([node, str(JS_DIR / SCRIPT), str(path)], capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS, cwd=JS_DIR)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"TF.js did not run {path} within {TIMEOUT_SECONDS} s to list its kernels.") from exc
    if done.returncode != 0:
        message = next((line.split(_ERROR_MARKER, 1)[1].strip() for line in done.stderr.splitlines() if _ERROR_MARKER in line),
                       done.stderr.strip()[-500:])
        raise RuntimeFailure(f"TF.js could not run {path} to list its kernels: {message}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _place(artifact: str | Path, backend: str) -> Placement:
    data = profile(artifact)
    registered = set(data["registered"][backend])
    # tf.profile also records op scopes (names ending in __op, e.g. fusedConv2d__op) around their kernels: not kernels.
    kernels = [k for k in data["kernels"] if not k["name"].endswith("__op")]
    package = f"@tensorflow/tfjs-backend-{backend} {data['tfjs_version']}"
    placements = tuple(
        OpPlacement(index=i, op=k["name"], placed_on=backend if k["name"] in registered else "none",
                    reason="" if k["name"] in registered else f"no {k['name']} kernel registered by {package}",
                    shapes=tuple(tuple(s or ()) for s in (*(k.get("inputShapes") or ()), *(k.get("outputShapes") or ()))))
        for i, k in enumerate(kernels)
    )
    return Placement(
        backend=BACKENDS[backend], ops=placements, partitions=None,
        source=f"kernels run by the model on TF.js {data['tfjs_version']}'s CPU backend (tf.profile) against {package}'s registry",
        notes=("ops: kernel runs in order; shapes: inputs then outputs", "TF.js has no per-kernel fallback: a missing kernel is an error"),
        details={"kernels_used": sorted({p.op for p in placements}), "kernels_registered": len(registered)},
    )


def place_webgl(artifact: str | Path) -> Placement:
    return _place(artifact, "webgl")


def place_wasm(artifact: str | Path) -> Placement:
    return _place(artifact, "wasm")


place = place_webgl  # the module's default placer; PLACERS lists both
