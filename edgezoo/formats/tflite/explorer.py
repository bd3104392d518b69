"""A .tflite in Model Explorer: the node ids of its flatbuffer adapter and each op's precision read from the file.

Node ids: the adapter (builtin_tflite_flatbuffer, from ai_edge_model_explorer_adapter) names each op node of the main
subgraph by its operator index ("0", "1", ...; constants and the graph's inputs and outputs get the numbers after the
last op), which is also the index of report["placement"] ops. Ops in other subgraphs (WHILE, IF bodies) get none.

No per-op latency: none of the installed TFLite runtimes (ai_edge_litert 2.3's Interpreter and CompiledModel,
TensorFlow 2.19's tf.lite.Interpreter, tflite_micro's runtime) hands per-op timings to Python; their profilers are
C++ only (benchmark_model), so there is nothing measured to draw.
"""

from __future__ import annotations

from pathlib import Path

from edgezoo.formats.tflite.flatbuffer import read_flatbuffer
from edgezoo.formats.tflite.precision import op_precisions

ADAPTER_ID = "builtin_tflite_flatbuffer"
EXTENSIONS: tuple[str, ...] = ()  # built into Model Explorer when ai_edge_model_explorer_adapter is installed


def ops(path: str | Path) -> list[dict]:
    """The main subgraph's ops as the adapter numbers them, with the precision each computes in (from the file)."""
    data = Path(path).read_bytes()
    nodes = read_flatbuffer(data).ops
    precisions = op_precisions(data)  # one per op, in read_flatbuffer's order
    return [{"index": node.index, "node_id": str(node.index), "op": node.op, "output": p.output, "layer": p.layer,
             "precision": p.precision} for node, p in zip(nodes, precisions) if node.subgraph == 0]


def adapter():
    from model_explorer.builtin_tflite_flatbuffer_adapter import BuiltinTfliteFlatbufferAdapter

    return BuiltinTfliteFlatbufferAdapter()
