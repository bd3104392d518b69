"""The TensorFlow Lite Micro interpreter, run in a child process by edgezoo.formats.tflite.run_tflm.

TFLM aborts the whole process on some models (dynamic shapes, damaged files), so it never runs in
edgezoo's own process. This module imports only numpy and tflite-micro. It reads a JSON request,
and writes a JSON result (and an .npz of outputs) to the paths the request names:

    run:   quantise each input sample with the input tensor's parameters, invoke, dequantise outputs
    arena: the smallest tensor arena (bytes, to 16) with which the model loads and runs, by bisection, each
           attempt in a forked copy of the child (an arena too small can crash TFLM)

Before each interpreter it builds, it writes ATTEMPT_MARKER to stderr, so that the parent can read TFLM's
messages about the last attempt alone (TFLM prints them to stderr, and a crash leaves nothing else).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import numpy as np

ALIGNMENT = 16  # TFLM aligns tensor buffers to 16 bytes
MAX_ARENA = 1 << 30
ATTEMPT_MARKER = "edgezoo-tflm-attempt"


def _interpreter(model: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    sys.stdout.flush()
    sys.stderr.flush()
    os.write(2, f"{ATTEMPT_MARKER} arena={int(arena_size)}\n".encode())
    return runtime.Interpreter.from_bytes(model, arena_size=int(arena_size))


def _quantization(details: dict) -> tuple[float, int]:
    params = details["quantization_parameters"]
    if len(params["scales"]) == 0:
        return 0.0, 0
    return float(params["scales"][0]), int(params["zero_points"][0])


def _to_tensor(array: np.ndarray, details: dict) -> np.ndarray:
    dtype = np.dtype(details["dtype"])
    scale, zero_point = _quantization(details)
    if dtype.kind in "iu" and array.dtype.kind == "f" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(dtype)
    return array.astype(dtype)


def _from_tensor(array: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = _quantization(details)
    if array.dtype.kind in "iu" and scale:
        return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return array


def run(model: bytes, arena_size: int, inputs: list[np.ndarray], num_outputs: int) -> list[np.ndarray]:
    """Inputs in the subgraph's input order, [N, ...] each; outputs in the subgraph's output order."""
    interpreter = _interpreter(model, arena_size)
    input_details = [interpreter.get_input_details(i) for i in range(len(inputs))]
    output_details = [interpreter.get_output_details(i) for i in range(num_outputs)]
    results: list[list[np.ndarray]] = [[] for _ in range(num_outputs)]
    for index in range(len(inputs[0]) if inputs else 0):
        interpreter.reset()  # each sample from a clean state, as the original sees it (variable tensors of fused LSTMs)
        for position, (array, details) in enumerate(zip(inputs, input_details)):
            interpreter.set_input(_to_tensor(array[index : index + 1], details), position)
        interpreter.invoke()
        for position, details in enumerate(output_details):
            results[position].append(_from_tensor(np.array(interpreter.get_output(position)), details))
    return [np.concatenate(r) for r in results]


def _runs_with(model: bytes, arena_size: int, num_inputs: int) -> bool:
    try:
        interpreter = _interpreter(model, arena_size)
    except RuntimeError:  # "TFLM failed to allocate tensors": the arena is too small (or a kernel refused in Prepare)
        return False
    for position in range(num_inputs):
        details = interpreter.get_input_details(position)
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), position)
    # Kernels take their memory in Prepare: a failure to invoke is a kernel's, which no arena mends, so it is raised.
    interpreter.invoke()
    return True


def _attempt(model: bytes, arena_size: int, num_inputs: int) -> str:
    """'runs', 'short' (the arena is too small), or the signal's name when TFLM crashed; raises when a kernel failed.

    Each attempt runs in a forked copy of this process: TFLM dereferences null (SIGSEGV) when some arenas are too
    small to hold even its own structures, and that must not end the search.
    """
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401  imported once, before the fork, not in every copy

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if _runs_with(model, arena_size, num_inputs) else 1
        except RuntimeError:
            code = 2
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    code = os.WEXITSTATUS(status)
    if code == 2:
        raise RuntimeError(f"Interpreter invocation failed with a {arena_size:,}-byte arena (a kernel failed, not the arena)")
    if code not in (0, 1):
        raise RuntimeError(f"the attempt with a {arena_size:,}-byte arena ended with code {code}")
    return "runs" if code == 0 else "short"


def smallest_arena(model: bytes, num_inputs: int) -> int:
    """Bisection between an arena that fails and one that runs; a crash with an arena too small counts as a failure."""
    high = max(4096, len(model))
    while (outcome := _attempt(model, high, num_inputs)) != "runs":
        if high >= MAX_ARENA:
            crashed = f"TFLM crashed ({outcome}) with every arena tried" if outcome != "short" else "the model does not run"
            raise RuntimeError(f"{crashed}, up to {MAX_ARENA:,} bytes")
        high *= 4
    low = 0
    while high - low > ALIGNMENT:
        middle = (low + high) // 2 // ALIGNMENT * ALIGNMENT
        if middle <= low:
            break
        if _attempt(model, middle, num_inputs) == "runs":
            high = middle
        else:
            low = middle
    return high


def main(request_path: str) -> int:
    request = json.loads(open(request_path).read())
    with open(request["model"], "rb") as handle:
        model = handle.read()
    try:
        if request["mode"] == "arena":
            result = {"arena_bytes": smallest_arena(model, request["num_inputs"])}
        else:
            with np.load(request["inputs"]) as data:
                inputs = [data[str(i)] for i in range(len(data.files))]
            outputs = run(model, request["arena_size"], inputs, request["num_outputs"])
            np.savez(request["outputs"], **{str(i): array for i, array in enumerate(outputs)})
            result = {"ok": True}
    except Exception as exc:  # reported to the parent, which raises RuntimeFailure with it
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=3)}
    with open(request["result"], "w") as handle:
        json.dump(result, handle)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
