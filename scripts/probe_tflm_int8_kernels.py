"""Which TFLM kernels run int8: a one-op full-integer model per TFLite builtin, run on the installed TFLM.

    .venv/bin/python scripts/probe_tflm_int8_kernels.py            # rewrites edgezoo/formats/tflite/tflm_int8_kernels.json
    .venv/bin/python scripts/probe_tflm_int8_kernels.py LOG CONV_2D # probes these ops, prints, writes nothing

tflite-micro ships no machine-readable list of the dtypes its kernels take. For each builtin the installed
TFLM registers and a tiny TensorFlow graph lowers to, this converts the graph full-integer (int8 weights and
activations, int8 input and output, seeded calibration data), checks that the op is in the model reading int8,
and runs it on TFLM through edgezoo's runner (a child process: TFLM can abort). When the int8 model fails
there, the float32 model of the same graph is run too, so that "float_only" means TFLM has the op for
float32 but not for int8. The table records the tflite-micro version it was probed on; a test fails when
the installed version differs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SEED = 0
SAMPLES = 16
VEC, IMG = (1, 16), (1, 8, 8, 4)


@dataclass(frozen=True)
class Probe:
    build: Callable  # (tf, *inputs) -> a tensor or a dict of tensors
    shapes: tuple = (VEC,)  # one float32 input per shape
    low: float = -2.0  # the inputs' range, for calibration and the run
    high: float = 2.0
    float_io: bool = False  # QUANTIZE and DEQUANTIZE appear only at float inputs and outputs


def _weights(*shape):
    return np.random.default_rng(SEED).normal(size=shape).astype(np.float32) * 0.3


def _as_float(tf, condition):
    return tf.cast(condition, tf.float32)  # a bool result back to a number (TFLM has no SELECT, which tf.where can become)


PROBES: dict[str, Probe] = {
    "ABS": Probe(lambda tf, x: tf.abs(x)),
    "ADD": Probe(lambda tf, x, y: x + y, (VEC, VEC)),
    "ADD_N": Probe(lambda tf, x, y, z: tf.add_n([x, y, z]), (VEC, VEC, VEC)),
    "ARG_MAX": Probe(lambda tf, x: tf.argmax(x, axis=-1, output_type=tf.int32)),
    "ARG_MIN": Probe(lambda tf, x: tf.argmin(x, axis=-1, output_type=tf.int32)),
    "AVERAGE_POOL_2D": Probe(lambda tf, x: tf.nn.avg_pool2d(x, 2, 2, "VALID"), (IMG,)),
    "BATCH_MATMUL": Probe(lambda tf, a, b: tf.matmul(a, b), ((1, 4, 8), (1, 8, 4))),
    "BATCH_TO_SPACE_ND": Probe(lambda tf, x: tf.batch_to_space(tf.space_to_batch(x, [2, 2], [[0, 0], [0, 0]]) * 2.0, [2, 2], [[0, 0], [0, 0]]), (IMG,)),
    "BROADCAST_TO": Probe(lambda tf, x: tf.broadcast_to(x, [4, 16]) * tf.constant(_weights(4, 16))),
    "CAST": Probe(lambda tf, x: tf.cast(tf.cast(x * 10.0, tf.int32), tf.float32)),
    "CEIL": Probe(lambda tf, x: tf.math.ceil(x)),
    "CONCATENATION": Probe(lambda tf, x, y: tf.concat([x, y], -1), (VEC, VEC)),
    "CONV_2D": Probe(lambda tf, x: tf.nn.conv2d(x, _weights(3, 3, 4, 8), 1, "SAME"), (IMG,)),
    "COS": Probe(lambda tf, x: tf.cos(x)),
    "CUMSUM": Probe(lambda tf, x: tf.cumsum(x, axis=-1)),
    "DEPTHWISE_CONV_2D": Probe(lambda tf, x: tf.nn.depthwise_conv2d(x, _weights(3, 3, 4, 1), [1, 1, 1, 1], "SAME"), (IMG,)),
    "DEPTH_TO_SPACE": Probe(lambda tf, x: tf.nn.depth_to_space(x, 2), (IMG,)),
    "DEQUANTIZE": Probe(lambda tf, x: tf.abs(x), float_io=True),
    "DIV": Probe(lambda tf, x, y: x / y, (VEC, VEC), 0.5, 2.0),
    "ELU": Probe(lambda tf, x: tf.nn.elu(x)),
    "EQUAL": Probe(lambda tf, x, y: _as_float(tf, tf.equal(x, y)), (VEC, VEC)),
    "EXP": Probe(lambda tf, x: tf.exp(x)),
    "EXPAND_DIMS": Probe(lambda tf, x: tf.expand_dims(x, 1)),
    "FLOOR": Probe(lambda tf, x: tf.floor(x)),
    "FLOOR_DIV": Probe(lambda tf, x, y: tf.math.floordiv(x, y), (VEC, VEC), 0.5, 2.0),
    "FLOOR_MOD": Probe(lambda tf, x, y: tf.math.floormod(x, y), (VEC, VEC), 0.5, 2.0),
    "FULLY_CONNECTED": Probe(lambda tf, x: tf.matmul(x, _weights(16, 8))),
    "GATHER": Probe(lambda tf, x: tf.gather(x, [3, 1, 2, 7], axis=1)),
    "GATHER_ND": Probe(lambda tf, x: tf.gather_nd(x, [[0, 1], [0, 3], [0, 5]])),
    "GREATER": Probe(lambda tf, x, y: _as_float(tf, x > y), (VEC, VEC)),
    "GREATER_EQUAL": Probe(lambda tf, x, y: _as_float(tf, x >= y), (VEC, VEC)),
    "HARD_SWISH": Probe(lambda tf, x: x * tf.nn.relu6(x + 3.0) / 6.0, low=-4.0, high=4.0),
    "L2_NORMALIZATION": Probe(lambda tf, x: tf.math.l2_normalize(x, axis=-1)),
    "LEAKY_RELU": Probe(lambda tf, x: tf.nn.leaky_relu(x, 0.2)),
    "LESS": Probe(lambda tf, x, y: _as_float(tf, x < y), (VEC, VEC)),
    "LESS_EQUAL": Probe(lambda tf, x, y: _as_float(tf, x <= y), (VEC, VEC)),
    "LOG": Probe(lambda tf, x: tf.math.log(x), low=0.1, high=4.0),
    "LOGICAL_AND": Probe(lambda tf, x, y: _as_float(tf, tf.logical_and(x > 0, y > 0)), (VEC, VEC)),
    "LOGICAL_NOT": Probe(lambda tf, x, y: _as_float(tf, tf.logical_not(tf.logical_and(x > 0, y > 0))), (VEC, VEC)),
    "LOGICAL_OR": Probe(lambda tf, x, y: _as_float(tf, tf.logical_or(x > 0, y > 0)), (VEC, VEC)),
    "LOGISTIC": Probe(lambda tf, x: tf.sigmoid(x)),
    "LOG_SOFTMAX": Probe(lambda tf, x: tf.nn.log_softmax(x)),
    "MAXIMUM": Probe(lambda tf, x, y: tf.maximum(x, y), (VEC, VEC)),
    "MAX_POOL_2D": Probe(lambda tf, x: tf.nn.max_pool2d(x, 2, 2, "VALID"), (IMG,)),
    "MEAN": Probe(lambda tf, x: tf.reduce_mean(x, axis=[1, 2]), (IMG,)),
    "MINIMUM": Probe(lambda tf, x, y: tf.minimum(x, y), (VEC, VEC)),
    "MIRROR_PAD": Probe(lambda tf, x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"), (IMG,)),
    "MUL": Probe(lambda tf, x, y: x * y, (VEC, VEC)),
    "NEG": Probe(lambda tf, x: -x),
    "NOT_EQUAL": Probe(lambda tf, x, y: _as_float(tf, tf.not_equal(x, y)), (VEC, VEC)),
    "PACK": Probe(lambda tf, x, y: tf.stack([x, y], axis=1), (VEC, VEC)),
    "PAD": Probe(lambda tf, x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), (IMG,)),
    "PADV2": Probe(lambda tf, x: tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=0.5), (IMG,)),
    "PRELU": Probe(lambda tf, x: tf.nn.relu(x) + -tf.constant(np.linspace(0.1, 0.3, 4, dtype=np.float32)) * tf.nn.relu(-x), (IMG,)),
    "QUANTIZE": Probe(lambda tf, x: tf.abs(x), float_io=True),
    "REDUCE_ALL": Probe(lambda tf, x, y: _as_float(tf, tf.reduce_all(x > 0, axis=-1, keepdims=True)), (VEC, VEC)),
    "REDUCE_MAX": Probe(lambda tf, x: tf.reduce_max(x, axis=-1)),
    "REDUCE_MIN": Probe(lambda tf, x: tf.reduce_min(x, axis=-1)),
    "RELU": Probe(lambda tf, x: tf.nn.relu(x)),
    "RELU6": Probe(lambda tf, x: tf.nn.relu6(x), low=-2.0, high=8.0),
    "RESHAPE": Probe(lambda tf, x: tf.reshape(x, [1, 4, 4])),
    "RESIZE_BILINEAR": Probe(lambda tf, x: tf.image.resize(x, [16, 16], "bilinear"), (IMG,)),
    "RESIZE_NEAREST_NEIGHBOR": Probe(lambda tf, x: tf.image.resize(x, [16, 16], "nearest"), (IMG,)),
    "REVERSE_V2": Probe(lambda tf, x: tf.reverse(x, [1])),
    "ROUND": Probe(lambda tf, x: tf.round(x)),
    "RSQRT": Probe(lambda tf, x: tf.math.rsqrt(x), low=0.1, high=4.0),
    "SELECT_V2": Probe(lambda tf, x, y: tf.where(x > 0, x, y), (VEC, (1, 1))),  # broadcasting: SELECT_V2, not SELECT
    "SIN": Probe(lambda tf, x: tf.sin(x)),
    "SLICE": Probe(lambda tf, x: tf.slice(x, [0, 2], [1, 8])),
    "SOFTMAX": Probe(lambda tf, x: tf.nn.softmax(x)),
    "SPACE_TO_BATCH_ND": Probe(lambda tf, x: tf.space_to_batch(x, [2, 2], [[0, 0], [0, 0]]), (IMG,)),
    "SPACE_TO_DEPTH": Probe(lambda tf, x: tf.nn.space_to_depth(x, 2), (IMG,)),
    "SPLIT": Probe(lambda tf, x: dict(zip("ab", tf.split(x, 2, axis=-1)))),
    "SPLIT_V": Probe(lambda tf, x: dict(zip("ab", tf.split(x, [4, 12], axis=-1)))),
    "SQRT": Probe(lambda tf, x: tf.sqrt(x), low=0.1, high=4.0),
    "SQUARE": Probe(lambda tf, x: tf.square(x)),
    "SQUARED_DIFFERENCE": Probe(lambda tf, x, y: tf.math.squared_difference(x, y), (VEC, VEC)),
    "SQUEEZE": Probe(lambda tf, x: tf.squeeze(x, [1]), ((1, 1, 16),)),
    "STRIDED_SLICE": Probe(lambda tf, x: x[:, 1:13:3]),
    "SUB": Probe(lambda tf, x, y: x - y, (VEC, VEC)),
    "SUM": Probe(lambda tf, x: tf.reduce_sum(x, axis=-1)),
    "TANH": Probe(lambda tf, x: tf.tanh(x)),
    "TRANSPOSE": Probe(lambda tf, x: tf.transpose(x, [0, 2, 1, 3]), (IMG,)),
    "TRANSPOSE_CONV": Probe(lambda tf, x: tf.nn.conv2d_transpose(x, _weights(3, 3, 2, 4), [1, 16, 16, 2], 2, "SAME"), (IMG,)),
    "UNPACK": Probe(lambda tf, x: dict(zip("ab", tf.unstack(x, axis=1))), ((1, 2, 8),)),
}

# What the op reads in a full-integer model, where that is not int8.
READS = {"QUANTIZE": "float32", "LOGICAL_AND": "bool", "LOGICAL_NOT": "bool", "LOGICAL_OR": "bool", "REDUCE_ALL": "bool"}

# Registered builtins that no one-op graph above can make, and why.
NOT_PROBED = {
    "ASSIGN_VARIABLE": "resource variables: state, not an int8 computation",
    "BROADCAST_ARGS": "appears only with dynamic shapes, which TFLM does not run",
    "CALL_ONCE": "resource variables: state, not an int8 computation",
    "DYNAMIC_UPDATE_SLICE": "no TensorFlow op outside XLA lowers to it",
    "EMBEDDING_LOOKUP": "tf.gather lowers to GATHER; EMBEDDING_LOOKUP comes from hybrid models only",
    "FILL": "folded to a constant when shapes are static",
    "IF": "control flow: its branches hold the ops that compute",
    "L2_POOL_2D": "no TensorFlow op lowers to it",
    "READ_VARIABLE": "resource variables: state, not an int8 computation",
    "SHAPE": "folded to a constant when shapes are static",
    "SVDF": "no TensorFlow op lowers to it",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "made from Keras LSTM layers only, not a one-op graph",
    "VAR_HANDLE": "resource variables: state, not an int8 computation",
    "WHILE": "control flow: its body holds the ops that compute",
    "ZEROS_LIKE": "folded to a constant when shapes are static",
}


def _inputs(probe: Probe, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(probe.low, probe.high, size=(count, *shape[1:])).astype(np.float32) for shape in probe.shapes]


def _convert(tf, probe: Probe, int8: bool) -> bytes:
    names = [f"in{i}" for i in range(len(probe.shapes))]
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for shape, name in zip(probe.shapes, names)]

    @tf.function(input_signature=specs)
    def graph(*inputs):
        return probe.build(tf, *inputs)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([graph.get_concrete_function()], graph)
    if int8:
        samples = _inputs(probe, SAMPLES, SEED)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([a[i : i + 1] for a in samples] for i in range(SAMPLES))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if not probe.float_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    return converter.convert()


def _run_on_tflm(flatbuffer: bytes, probe: Probe, folder: Path) -> tuple[str, str] | None:
    """None when TFLM ran the model; otherwise (the op whose kernel failed, or "" when none was named, TFLM's message)."""
    from edgezoo.formats.base import Artifact, Quantization
    from edgezoo.formats.tflite import read_flatbuffer
    from edgezoo.errors import EdgezooError
    from edgezoo.formats.tflite import run_tflm as tflm

    path = folder / "model.tflite"
    path.write_bytes(flatbuffer)
    summary = read_flatbuffer(flatbuffer)
    names = tuple(i.name for i in summary.inputs), tuple(o.name for o in summary.outputs)
    artifact = Artifact("tflite", path, (path,), Quantization.INT8, *names)
    try:
        tflm.run(artifact, dict(zip(names[0], _inputs(probe, 2, SEED + 1))))
    except EdgezooError as exc:  # a kernel's refusal (TargetConstraintError) names its op; a crash or load failure does not
        message = " ".join(str(exc).split())
        named = re.match(r"TFLM's (\S+) kernel failed", message)
        return (named[1] if named else ""), message
    return None


def probe(tf, op: str, folder: Path) -> dict:
    """{"int8": status, "detail": ...} for one op."""
    from edgezoo.formats.tflite import read_flatbuffer

    spec = PROBES[op]
    try:
        flatbuffer = _convert(tf, spec, int8=True)
    except Exception as exc:  # the converter raises many kinds; the first line says which op it could not quantise
        return {"int8": "not_probed", "detail": f"the TFLite converter made no int8 model: {str(exc).strip().splitlines()[0][:200]}"}
    nodes = read_flatbuffer(flatbuffer).ops
    made = ", ".join(f"{n.op}({'/'.join(n.input_dtypes)})" for n in nodes)
    wanted = READS.get(op, "int8")
    if not any(node.op == op for node in nodes):
        return {"int8": "not_probed", "detail": f"the int8 conversion lowers it to other ops: {made}"}
    if not any(node.op == op and wanted in node.input_dtypes for node in nodes):
        return {"int8": "kept_float", "detail": f"the int8 conversion keeps it in float32 (TFLM runs its float kernel): {made}"}
    failed = _run_on_tflm(flatbuffer, spec, folder)
    if failed is None:
        return {"int8": "int8", "detail": made}
    failed_op, message = failed
    if failed_op != op:
        return {"int8": "not_probed", "detail": f"inconclusive, {failed_op or 'no'} kernel named: {message[:300]}"}
    try:
        float_failed = _run_on_tflm(_convert(tf, spec, int8=False), spec, folder)
    except Exception as exc:
        float_failed = ("", f"no float32 model: {exc}")
    said = re.search(r"failed to (\w+) operator \d+ .*? \((.*)\)\. TFLM's", message)
    detail = f"int8: {said[1]} fails, {said[2]}" if said else message[:300]
    if float_failed is None:
        return {"int8": "float_only", "detail": detail + "; the float32 model runs"}
    return {"int8": "fails", "detail": f"{detail}; float32 too: {float_failed[1][:200]}"}


def probe_all(ops: list[str]) -> dict[str, dict]:
    from edgezoo import _tf

    tf = _tf.tf()
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgezoo-probe-") as folder:
        for op in ops:
            if op in NOT_PROBED:
                results[op] = {"int8": "not_probed", "detail": NOT_PROBED[op]}
                continue
            if op not in PROBES:
                results[op] = {"int8": "not_probed", "detail": "no one-op graph in scripts/probe_tflm_int8_kernels.py makes it"}
                continue
            with _tf.quiet_native_output():
                results[op] = probe(tf, op, Path(folder))
            print(f"{op:30s} {results[op]['int8']:11s} {results[op].get('detail', '')[:150]}", flush=True)
    return results


def main(argv: list[str]) -> int:
    from importlib.metadata import version

    from edgezoo.formats.tflite import builtin_op_names
    from edgezoo.formats.tflite import tflm_ops

    registered = sorted(tflm_ops.kernels() & builtin_op_names())
    if argv:
        probe_all(argv)
        return 0
    table = {
        "tflite_micro_version": version("tflite-micro"),
        "generated_by": tflm_ops.PROBE_COMMAND,
        "statuses": {
            "int8": "a one-op full-integer model (int8 input, output and activations; the op reading int8, or bool for logical ops) ran on TFLM",
            "float_only": "the int8 model failed on TFLM while the float32 model of the same graph ran",
            "fails": "neither the int8 nor the float32 one-op model ran on TFLM",
            "kept_float": "the int8 conversion keeps the op in float32 between DEQUANTIZE and QUANTIZE; TFLM runs its float kernel",
            "not_probed": "no tiny TensorFlow graph lowers to it as an int8 op (see detail)",
        },
        "kernels": probe_all(registered),
    }
    tflm_ops.INT8_KERNELS_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    counts = {status: sum(e["int8"] == status for e in table["kernels"].values()) for status in tflm_ops.INT8_STATUSES}
    print(f"wrote {tflm_ops.INT8_KERNELS_FILE} ({len(registered)} builtins): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
