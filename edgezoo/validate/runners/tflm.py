"""TensorFlow Lite Micro, the runtime of microcontrollers, through tflite-micro's Python interpreter.

TFLM aborts the process on some models instead of raising, so it always runs in a child process
(tflm_child.py): a crash there becomes a RuntimeFailure with TFLM's own message, and edgezoo goes on.
Besides `run`, this runtime measures the smallest tensor arena a model needs (`measure_arena`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgezoo.converter.base import Artifact
from edgezoo.converter.tflite_flatbuffer import read_flatbuffer
from edgezoo.errors import CorruptModelError, RuntimeFailure

RUNTIME = "tflm"
DEFAULT_ARENA_BYTES = 64 << 20  # when the arena was not measured: ample for models that fit a microcontroller
TIMEOUT_SECONDS = 900


def _dynamic_hint(summary) -> str:
    dynamic = [io.name for io in (*summary.inputs, *summary.outputs) if io.dynamic]
    if not dynamic:
        return ""
    return (
        f" The model has dynamic dimensions ({', '.join(dynamic)}), which TFLM does not support: "
        "convert it with a fixed batch (a profile with fixed_batch = 1, such as microcontroller)."
    )


def _child(request: dict, workdir: Path, what: str, summary) -> dict:
    """Run tflm_child with a request; its crash, error or timeout becomes a RuntimeFailure."""
    request_path = workdir / "request.json"
    request["result"] = str(workdir / "result.json")
    request_path.write_text(json.dumps(request))
    command = [sys.executable, "-m", "edgezoo.validate.runners.tflm_child", str(request_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_SECONDS, env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"TFLM did not finish {what} within {TIMEOUT_SECONDS} s; the child process was stopped.") from exc
    log = "\n".join(line for line in (done.stdout + done.stderr).strip().splitlines()[-12:])
    log_text = f"\nTFLM said:\n{log}" if log else " TFLM printed nothing."
    result_path = Path(request["result"])
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise RuntimeFailure(f"TFLM crashed ({name}) while {what}.{_dynamic_hint(summary)}{log_text}")
    if not result_path.exists():
        raise RuntimeFailure(f"TFLM exited with code {done.returncode} while {what}.{_dynamic_hint(summary)}{log_text}")
    result = json.loads(result_path.read_text())
    if "error" in result:
        raise RuntimeFailure(f"TFLM failed while {what}: {result['error']}.{_dynamic_hint(summary)}{log_text}")
    return result


def _summary(artifact: Artifact):
    try:
        return read_flatbuffer(artifact.path.read_bytes())
    except (OSError, CorruptModelError) as exc:
        raise RuntimeFailure(f"TFLM cannot load {artifact.path}: {exc}") from exc


def run(artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by the signature's names; runs with the measured arena (margin included) when there is one."""
    summary = _summary(artifact)
    missing = [io.name for io in summary.inputs if io.name not in inputs]
    if missing:
        raise RuntimeFailure(f"{artifact.path} takes inputs {', '.join(missing)}, which were not given.")
    arena = artifact.details.get("arena_bytes") or DEFAULT_ARENA_BYTES
    with tempfile.TemporaryDirectory(prefix="edgezoo-tflm-") as folder:
        workdir = Path(folder)
        np.savez(workdir / "inputs.npz", **{str(io.position): inputs[io.name] for io in summary.inputs})
        request = {
            "mode": "run",
            "model": str(artifact.path),
            "arena_size": int(arena),
            "inputs": str(workdir / "inputs.npz"),
            "outputs": str(workdir / "outputs.npz"),
            "num_outputs": len(summary.outputs),
        }
        _child(request, workdir, f"running {artifact.path.name} with a {arena:,}-byte arena", summary)
        with np.load(workdir / "outputs.npz") as data:
            return {io.name: data[str(io.position)] for io in summary.outputs}


def measure_arena(artifact: Artifact) -> int:
    """The smallest tensor arena (bytes) with which TFLM loads and runs the model, found by bisection.

    Measured on this (64-bit) host: pointers and TFLM's bookkeeping structs are larger than on a
    32-bit microcontroller, so the figure errs on the safe side; profiles add a margin on top.
    """
    summary = _summary(artifact)
    with tempfile.TemporaryDirectory(prefix="edgezoo-tflm-") as folder:
        request = {"mode": "arena", "model": str(artifact.path), "num_inputs": len(summary.inputs)}
        result = _child(request, Path(folder), f"measuring the tensor arena of {artifact.path.name}", summary)
    return int(result["arena_bytes"])
