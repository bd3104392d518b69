"""An .onnx in Model Explorer: the node ids of the model-explorer-onnx extension, each node's precision read from the
file, and each node's latency as ONNX Runtime's profiler measures it on this host's CPU.

Node ids: the extension (adapter "onnx_adapter", module model_explorer_onnx) reads the file with onnx_ir, runs onnx_ir's
NameFixPass (it names unnamed nodes and renames duplicates, keeping every other name) and ids each node of the main
graph by its name. The same pass runs here, so the ids are the adapter's; a node's index is its position in
graph.node, the index of report["placement"] ops.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from edgezoo.formats.runtime import pad_batch

ADAPTER_ID = "onnx_adapter"
EXTENSIONS = ("model_explorer_onnx",)  # the module Model Explorer imports (its .main) to register that adapter
CONVERSIONS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "CastLike"}
INDEX_TYPES = {"int32", "int64", "bool", "string", "uint32", "uint64"}
WARMUP_RUNS, TIMED_RUNS = 3, 20
# The latency overlay's file stem and name: what was timed, where, and how far to trust it.
LATENCY_OVERLAY = ("latency-onnxruntime-cpu",
                   f"latency (µs), onnxruntime CPU: median of {TIMED_RUNS} runs on this host, not the device; graph "
                   "optimisations off; noisy on a shared machine")


def ops(path: str | Path) -> list[dict]:
    """Each node of the main graph (in file order): its adapter id, op type, first output, layer and precision."""
    import onnx

    import edgezoo.formats.inspect  # noqa: F401 - first: it loads every format's inspect module (onnx's imports it back)
    from edgezoo.formats.onnx.inspect import DYNAMIC_INT8_OPS

    integer_kernels = DYNAMIC_INT8_OPS - CONVERSIONS  # ConvInteger, MatMulInteger: int8 weights, activations quantised as it runs
    model = onnx.load(str(path), load_external_data=False)
    try:  # the value types say what a node computes in; without them the op type alone decides
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shape inference fails on some valid models; the adapter carries on the same way
        pass
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    producer = {out: node.op_type for node in graph.node for out in node.output}
    return [{"index": i, "node_id": node_id, "op": node.op_type, "output": node.output[0] if node.output else "",
             "layer": layer_name(node.name), "precision": _precision(node, types, producer, integer_kernels)}
            for i, (node, node_id) in enumerate(zip(graph.node, node_ids(path)))]


def node_ids(path: str | Path) -> list[str]:
    """The adapter's id of each node of the main graph, in file order."""
    import onnx
    import onnx_ir
    from onnx_ir.passes.common import NameFixPass

    model = onnx_ir.serde.deserialize_model(onnx.load(str(path), load_external_data=False))
    NameFixPass()(model)
    return [node.name for node in model.graph]


def adapter():
    from model_explorer_onnx.main import ONNXAdapter

    return ONNXAdapter()


def layer_name(node_name: str) -> str:
    """`StatefulPartitionedCall/digits_cnn/conv1/BiasAdd` -> `digits_cnn/conv1` (tf2onnx keeps TensorFlow's scopes)."""
    parts = [p for p in node_name.split(":")[0].split("/") if p and not p.endswith("PartitionedCall")]
    return "/".join(parts[:-1]) or (parts[-1] if parts else node_name)


def _precision(node, types: dict[str, int], producer: dict[str, str], integer_kernels: set[str]) -> str:
    import onnx

    op = node.op_type
    if op in CONVERSIONS:
        return "conversion"
    if op.startswith("QLinear") or op in {"QGemm", "QAttention"}:
        return "int8"
    if op in integer_kernels:
        return "dynamic-int8"
    inputs = [name for name in node.input if name]
    # QDQ format: an op that reads only dequantised values is one ONNX Runtime runs in int8 (it fuses DQ -> op -> Q).
    if inputs and all(producer.get(name) == "DequantizeLinear" for name in inputs if types.get(name) != onnx.TensorProto.INT64):
        return "int8"
    kinds = []
    for name in (*node.output, *inputs):
        if name in types and types[name]:
            kinds.append(onnx.helper.tensor_dtype_to_np_dtype(types[name]).name if types[name] != onnx.TensorProto.STRING else "string")
    floats = [k for k in kinds if k.startswith("float")]
    if floats:
        return "float16" if floats[0] == "float16" else "float32"
    if kinds and all(k in INDEX_TYPES for k in kinds):
        return "index"
    if kinds and kinds[0] in {"int8", "uint8"}:
        return "int8"
    return "unknown"


def latency(path: str | Path, inputs: dict[str, np.ndarray]) -> dict[int, float]:
    """Node index -> median time of its kernel in µs over TIMED_RUNS runs of one sample (after WARMUP_RUNS), as ONNX
    Runtime's profiler measures it on this host's CPU, one thread. Graph optimisations are off, so the timed kernels are
    the file's own nodes (the profile's node_index is the position in graph.node); a fused graph would time other ops."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # fewer threads, steadier figures
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="edgezoo-ort-profile-") as folder:
        options.profile_file_prefix = str(Path(folder) / "profile")
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {}
        for spec in session.get_inputs():
            batch = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else None
            feed[spec.name] = pad_batch(np.asarray(inputs[spec.name][:1]), batch)
        for _ in range(WARMUP_RUNS + TIMED_RUNS):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    times: dict[int, list[float]] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time") and "node_index" in event.get("args", {}):
            times.setdefault(int(event["args"]["node_index"]), []).append(float(event["dur"]))
    return {index: statistics.median(values[-TIMED_RUNS:]) for index, values in sorted(times.items())}
