"""TensorFlow Lite Micro, the runtime of microcontrollers, through tflite-micro's Python interpreter.

TFLM aborts the process on some models instead of raising, so it always runs in a child process
(tflm_child.py): a crash there becomes a RuntimeFailure with TFLM's own message, and edgezoo goes on.
A kernel that refuses an operator ("Node LOG (number 160) failed to invoke") is the model not meeting
the target: a TargetConstraintError naming the operator's op, layer and input dtype.
Besides `run`, this runtime measures the smallest tensor arena a model needs (`measure_arena`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgezoo.formats.base import Artifact, layer_of
from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from edgezoo.errors import CorruptModelError, RuntimeFailure, TargetConstraintError
from edgezoo.formats.runtime import check_sample_shape
from edgezoo.formats.tflite.tflm_child import ATTEMPT_MARKER

RUNTIME = "tflm"
DEFAULT_ARENA_BYTES = 64 << 20  # when the arena was not measured: ample for models that fit a microcontroller
TIMEOUT_SECONDS = 900
# What TFLM prints when a kernel's Prepare or Eval returns an error, and when the arena (not a kernel) runs short.
_NODE_FAILURE = re.compile(r"Node (?P<op>\S+) \(number (?P<number>\d+)\) failed to (?P<stage>invoke|prepare) with status \d+")
_SHORT_OF_MEMORY = re.compile(r"Failed to (allocate|resize)")


@dataclass(frozen=True)
class NodeFailure:
    op: str  # as TFLM names it: the builtin (LOG) or custom op
    number: int  # the operator's index in its subgraph
    stage: str  # prepare or invoke
    reason: str  # the kernel's own line before it, e.g. "elementwise.cc:202 input->type != expected_type (INT8 != FLOAT32)"


def node_failure(stderr: str) -> NodeFailure | None:
    """The kernel failure TFLM reported in its last attempt, unless that attempt ran short of arena memory."""
    _, marker, attempt = stderr.rpartition(ATTEMPT_MARKER)
    if marker:
        attempt = attempt.partition("\n")[2]  # the rest of the marker's line is its arena size
    found = list(_NODE_FAILURE.finditer(attempt))
    if not found or _SHORT_OF_MEMORY.search(attempt):
        return None
    last = found[-1]
    before = [line.strip() for line in attempt[: last.start()].splitlines() if line.strip()]
    return NodeFailure(last["op"], int(last["number"]), last["stage"], before[-1] if before else "")


def _refusal(failure: NodeFailure, summary, model_path: Path) -> TargetConstraintError:
    """The failing operator named by its op, layer and input dtype, with what to do."""
    from edgezoo.formats.tflite.tflm_ops import int8_advice

    candidates = [node for node in summary.ops if node.index == failure.number and node.op == failure.op]
    node = min(candidates, key=lambda n: n.subgraph) if candidates else None
    layer = layer_of(node.node_name) if node else "unknown"
    dtype = node.input_dtypes[0] if node and node.input_dtypes else "unknown"
    where = f"operator {failure.number} of {model_path.name}, {failure.op} on {dtype} input, in layer {layer}"
    reason = f" ({failure.reason})" if failure.reason else ""
    if dtype in ("int8", "int16"):
        advice = f"TFLM's {failure.op} kernel does not take {dtype} input here. {int8_advice([failure.op], [layer])}"
    else:
        advice = f"Replace layer {layer} with ops TFLM supports, or choose a target with another runtime."
    return TargetConstraintError(f"TFLM's {failure.op} kernel failed to {failure.stage} {where}{reason}. {advice}{_dynamic_hint(summary)}")


def _dynamic_hint(summary) -> str:
    dynamic = [io.name for io in (*summary.inputs, *summary.outputs) if io.dynamic]
    if not dynamic:
        return ""
    return (
        f" The model has dynamic dimensions ({', '.join(dynamic)}), which TFLM does not support: "
        "convert it with static shapes (a profile with fixed_batch = 1, such as microcontroller, and --input-shape for "
        "the other dynamic dimensions)."
    )


def _child(request: dict, workdir: Path, what: str, summary) -> dict:
    """Run tflm_child with a request; a kernel's refusal becomes a TargetConstraintError, a crash, error or timeout a RuntimeFailure."""
    request_path = workdir / "request.json"
    request["result"] = str(workdir / "result.json")
    request_path.write_text(json.dumps(request))
    command = [sys.executable, "-m", "edgezoo.formats.tflite.tflm_child", str(request_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=TIMEOUT_SECONDS, env=dict(os.environ))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeFailure(f"TFLM did not finish {what} within {TIMEOUT_SECONDS} s; the child process was stopped.") from exc
    lines = [line for line in (done.stdout + done.stderr).strip().splitlines() if not line.startswith(ATTEMPT_MARKER)]
    log = "\n".join(lines[-12:])
    log_text = f"\nTFLM said:\n{log}" if log else " TFLM printed nothing."
    result_path = Path(request["result"])
    failure = node_failure(done.stderr) if done.returncode != 0 else None  # the child exits 0 only when all went well
    if failure is not None:
        raise _refusal(failure, summary, Path(request["model"]))
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
    for io in summary.inputs:  # TFLM has static shapes only: the samples must have the artifact's
        check_sample_shape(artifact.path, io.name, io.shape_signature, inputs[io.name])
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
