"""Which ops of a .tflite TensorFlow Lite Micro has a kernel for, in the dtype the op runs.

What TFLM implements is edgezoo.formats.tflite.tflm_ops' knowledge, used as it is: `supported_ops()` (the kernels the
installed tflite-micro links in) and `int8_kernels()` (the probed table of which kernels run on int8). An op runs in
the dtype of its first input (the activation; weights and biases follow it). TFLM has no fallback: a model with one
rejected op does not run at all, so there are no partitions.
"""

from __future__ import annotations

from pathlib import Path

from edgezoo.formats.placement import OpPlacement, Placement, read_bytes

BACKEND = "TFLM kernels"
PLACED_ON = "tflm"
INTEGER = ("int8", "int16")
# Measured, not in tflm_ops' tables (which probe int8): TFLM's DEQUANTIZE takes int8, int16 and uint8 input only, so
# a float16 model (float16 weights dequantised at load) fails to prepare its first DEQUANTIZE
# ("dequantize_common.cc:42 input->type == kTfLiteInt8 || ... was not true", digits-cnn's phone artifact, Dec 2026).
DEQUANTIZE_INPUTS = ("int8", "int16", "uint8")


def _verdict(op: str, dtype: str, supported: frozenset[str], table: dict) -> str:
    """Why TFLM cannot run the op in that dtype; empty when it can."""
    from edgezoo.formats.tflite import tflm_ops

    if op not in supported:
        return f"no TFLM kernel for {op} in the installed tflite-micro"
    if op == "DEQUANTIZE" and dtype and dtype not in DEQUANTIZE_INPUTS:
        return f"TFLM's DEQUANTIZE kernel takes {', '.join(DEQUANTIZE_INPUTS)} input, not {dtype}"
    if dtype in INTEGER and op in tflm_ops.float_only_ops():
        return f"TFLM's {op} kernel runs on float32 only, not on {dtype} (probed: {table.get(op, {}).get('detail', '')})"
    return ""


def _probed(op: str, dtype: str, table: dict) -> str:
    """What the probe found for an accepted integer op, when it found something (kept for the reader)."""
    entry = table.get(op)
    if dtype not in INTEGER or not entry:
        return ""
    return entry["int8"]


def place(artifact: str | Path | bytes) -> Placement:
    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
    from edgezoo.formats.tflite import tflm_ops

    nodes = [node for node in read_flatbuffer(read_bytes(artifact)).ops if node.subgraph == 0]
    supported = tflm_ops.supported_ops()
    table = tflm_ops.int8_kernels()["kernels"]
    placements = []
    int8_status: dict[str, str] = {}
    for node in nodes:
        dtype = node.input_dtypes[0] if node.input_dtypes else ""
        reason = _verdict(node.op, dtype, supported, table)
        if not reason and (status := _probed(node.op, dtype, table)):
            int8_status[node.op] = status
        placements.append(OpPlacement(index=node.index, op=node.op, placed_on="none" if reason else PLACED_ON,
                                      reason=reason, dtypes=(dtype,) if dtype else (), name=node.node_name))
    return Placement(
        backend=BACKEND, ops=tuple(placements), partitions=None,
        source=f"kernels linked in tflite-micro's _runtime library; int8 table {tflm_ops.INT8_KERNELS_FILE.name} "
               f"(tflite-micro {tflm_ops.int8_kernels().get('tflite_micro_version', '?')})",
        notes=("dtypes: the op's first input, the dtype its kernel runs in",
               "TFLM has no fallback: one rejected op and the model does not run"),
        details={"runs": all(p.accepted for p in placements), "int8_probe_status": int8_status},
    )
