"""TF.js in Node: the repo's JS harness (edgezoo/formats/tfjs/js) runs the graph model on @tensorflow/tfjs'
pure-JavaScript CPU backend, in a child process.

Inputs and outputs cross to JavaScript through an exchange folder (`inputs.json` / `outputs.json` plus raw
little-endian arrays), keyed by the signature's names. The browser runner uses the same exchange.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from edgezoo._workspace import scratch_dir
from edgezoo.formats.base import Artifact
from edgezoo.errors import ConversionError, RuntimeFailure, TargetConstraintError

RUNTIME = "tfjs-node"
JS_DIR = Path(__file__).resolve().parent / "js"
NODE_SCRIPT = JS_DIR / "run_node.mjs"
BACKEND = "cpu"
TIMEOUT_SECONDS = 1800
ERROR_MARKER = "edgezoo-harness-error:"
# What the harness exchanges; other input types are converted to the nearest of these, as TF.js would.
EXCHANGE_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
INPUT_CASTS = {"float64": "float32", "float16": "float32", "int64": "int32", "int16": "int32", "int8": "int32", "uint8": "int32"}


def node_modules() -> Path:
    """The harness' installed packages; a clear error when `make install` (npm ci) has not run."""
    folder = JS_DIR / "node_modules"
    if not (folder / "@tensorflow" / "tfjs" / "package.json").exists():
        raise ConversionError(
            f"the TF.js harness is not installed: {folder / '@tensorflow' / 'tfjs'} is missing. "
            f"Run `make install`, or `npm ci` in {JS_DIR}."
        )
    return folder


def write_inputs(folder: Path, inputs: dict[str, np.ndarray]) -> None:
    manifest = {}
    for index, (name, array) in enumerate(sorted(inputs.items())):
        dtype = INPUT_CASTS.get(array.dtype.name, array.dtype.name)
        if dtype not in EXCHANGE_DTYPES:
            raise RuntimeFailure(f"input '{name}' has dtype {array.dtype.name}, which TF.js models do not take.")
        file = f"input_{index}.bin"
        array.astype(np.dtype(EXCHANGE_DTYPES[dtype]).newbyteorder("<")).tofile(folder / file)
        manifest[name] = {"shape": list(array.shape), "dtype": dtype, "file": file}
    (folder / "inputs.json").write_text(json.dumps({"inputs": manifest}))


def read_outputs(folder: Path) -> dict[str, np.ndarray]:
    path = folder / "outputs.json"
    if not path.exists():
        raise RuntimeFailure(f"the TF.js harness wrote no outputs into {folder}.")
    manifest = json.loads(path.read_text())["outputs"]
    outputs = {}
    for name, spec in manifest.items():
        dtype = np.dtype(EXCHANGE_DTYPES[spec["dtype"]]).newbyteorder("<")
        outputs[name] = np.fromfile(folder / spec["file"], dtype=dtype).astype(dtype.newbyteorder("=")).reshape(spec["shape"])
    return outputs


def run(artifact: Artifact, inputs: dict[str, np.ndarray], backend: str = BACKEND) -> dict[str, np.ndarray]:
    node_modules()
    node = shutil.which("node")
    if node is None:
        raise ConversionError("Node.js is not installed (no `node` on PATH); the TF.js Node runner needs Node 20.")
    exchange = scratch_dir("tfjs-node-")
    try:
        write_inputs(exchange, inputs)
        try:
            process = subprocess.run(
                [node, str(NODE_SCRIPT), str(artifact.path), str(exchange), backend],
                capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=JS_DIR,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeFailure(f"TF.js in Node did not finish {artifact.path} within {TIMEOUT_SECONDS} s.") from exc
        if process.returncode != 0:
            raise run_failure(artifact, f"TF.js in Node ({backend})", harness_error(process.stderr))
        return read_outputs(exchange)
    finally:
        shutil.rmtree(exchange, ignore_errors=True)


_MISSING_KERNEL = re.compile(r"Kernel '([A-Za-z0-9_]+)' not registered for backend '([A-Za-z0-9_-]+)'")


def run_failure(artifact: Artifact, runner: str, message: str) -> Exception:
    """What a TF.js failure to run means: a kernel the backend lacks is the model not meeting the target (exit 3),
    named with the layers that use it; anything else is a runtime failure (exit 4)."""
    missing = _MISSING_KERNEL.search(message)
    if missing is None:
        return RuntimeFailure(f"{runner} could not run {artifact.path}: {message}")
    kernel, backend = missing.groups()
    from edgezoo.formats.base import describe_ops_by_layer
    from edgezoo.formats.tfjs.convert import graph_nodes

    try:
        nodes = [(op, name) for op, name in graph_nodes(json.loads(artifact.path.read_text())) if op == kernel]
    except (OSError, ValueError, KeyError):
        nodes = []
    where = describe_ops_by_layer(nodes) if nodes else kernel
    return TargetConstraintError(
        f"TF.js' {backend} backend has no kernel for {where}, so {runner} cannot run the model (the converter emits the op; "
        f"the backend does not implement it). Replace those layers with ops the {backend} backend implements, or choose "
        "another target (onnx, phone)."
    )


def harness_error(stderr: str) -> str:
    """The harness' one-line error message (run_node.mjs marks it), or the end of whatever it printed."""
    for line in stderr.splitlines():
        if line.startswith(ERROR_MARKER):
            return line[len(ERROR_MARKER):].strip()
    kept = [line for line in stderr.strip().splitlines() if line.strip()]
    return "\n".join(kept[-8:]) if kept else "(no message)"
