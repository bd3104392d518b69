"""Which ops of a .tflite the GPU delegate takes, the reason for each it rejects, and the partitions it makes.

The verdicts come from TensorFlow's model analyzer (`tf.lite.experimental.Analyzer.analyze(...,
gpu_compatibility=True)`), whose text is parsed here: it writes one line per op (`  Op#3 CONV_2D(T#0, T#4, T#3) ->
[T#5]`), followed by `GPU COMPATIBILITY WARNING: <reason>` under each op the delegate's checker
(tensorflow/lite/tools/versioning/gpu_compatibility.cc) rejects, and `GPU COMPATIBILITY WARNING: Subgraph#0 has GPU
delegate compatibility issues at nodes 1, 4 ...` per subgraph.

TensorFlow 2.19's analyzer (the wheel pinned here, and ai-edge-litert 2.3.0's copy) is built without that checker:
it prints "Your model looks compatible with GPU delegate" for every model (FlexErf, WHERE, TOPK_V2, GATHER_ND and
custom ops included; verified December 2026) and its library has no warning text in it. So when the analyzer's
library lacks the checker, the verdicts come from DELEGATE_OPS instead: the ops gpu_compatibility.cc has a case for
(its op-level rule, "Not supported op X"), plus its CAST dtype rule; its parameter checks (strides, ranks,
broadcasting, constant axes) are not applied there, so an op this accepts may still be rejected on a device.
`Placement.source` says which of the two gave the verdicts.

Partitions are computed as TFLite cuts a graph for a delegate (tensorflow/lite/graph_info.cc,
PartitionGraphIntoIndependentNodeSubsets): walking the execution plan, the ops of one kind (accepted or rejected) whose
inputs are all available join the current subset; when none is left, the subset closes and the other kind starts.
Independent ops on either side of a rejected op can so share a partition; a rejected op between two accepted ops that
depend on it splits them. The accepted subsets are the delegate's partitions (by default the GPU delegate then
delegates only the largest one: `max_delegated_partitions` is 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edgezoo.errors import CorruptModelError
from edgezoo.formats.placement import ACCEPTED_BY_DEFAULT, OpPlacement, Placement, captured_fd, read_bytes

BACKEND = "GPU delegate"
PLACED_ON = "gpu"

# The builtin ops tensorflow/lite/tools/versioning/gpu_compatibility.cc has a case for (tensorflow/tensorflow at
# 03a5e4e19a9c8200e13c85f1c637877fdf589be6); any other builtin gets "Not supported op <OP>".
DELEGATE_OPS = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTHWISE_CONV_2D
DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD
FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC LSTM
MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX
REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2
SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB
SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())
# Custom ops (by custom code) the same file accepts; any other gets "Not supported custom op <code>".
DELEGATE_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"})
RULES_SOURCE = ("the op list and CAST rule of tensorflow/lite/tools/versioning/gpu_compatibility.cc (tensorflow "
                "03a5e4e); the installed analyzer has no GPU checker")

_OP_LINE = re.compile(r"^\s+Op#(\d+) (\S+)\((.*)\) -> \[(.*)\]\s*$")
_SUBGRAPH_LINE = re.compile(r"^Subgraph#(\d+)\b")
_WARNING = "GPU COMPATIBILITY WARNING: "
_SUMMARY = re.compile(r"Subgraph#(\d+) has GPU delegate compatibility issues at nodes ([\d, ]+)")
_TENSOR_REF = re.compile(r"T#(-?\d+)")


@dataclass(frozen=True)
class AnalyzedOp:
    """One op line of the analyzer's text, with the warnings printed under it."""

    subgraph: int
    index: int
    op: str
    inputs: tuple[int, ...]  # tensor numbers; -1 for an optional input left out
    outputs: tuple[int, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalyzerReport:
    ops: tuple[AnalyzedOp, ...]
    flagged: dict[int, tuple[int, ...]]  # subgraph -> node numbers, from the per-subgraph summary line
    says_compatible: bool  # "Your model looks compatible with GPU delegate" was printed


def analyzer_text(data: bytes) -> str:
    """The analyzer's report for a model (it prints instead of returning: captured from fd 1 and sys.stdout)."""
    from edgezoo import _tf

    tf = _tf.tf()
    with captured_fd(1) as text:
        tf.lite.experimental.Analyzer.analyze(model_content=data, gpu_compatibility=True)
    return text[0]


def parse_analyzer(text: str) -> AnalyzerReport:
    ops: list[AnalyzedOp] = []
    flagged: dict[int, tuple[int, ...]] = {}
    subgraph = 0
    for line in text.splitlines():
        if (match := _SUBGRAPH_LINE.match(line)) and "->" in line:
            subgraph = int(match.group(1))
        elif match := _OP_LINE.match(line):
            inputs = tuple(int(t) for t in _TENSOR_REF.findall(match.group(3).split("Cond:")[0]))
            outputs = tuple(int(t) for t in _TENSOR_REF.findall(match.group(4)))
            ops.append(AnalyzedOp(subgraph, int(match.group(1)), match.group(2), inputs, outputs))
        elif _WARNING in line:
            message = line.split(_WARNING, 1)[1].strip()
            if summary := _SUMMARY.search(message):
                flagged[int(summary.group(1))] = tuple(int(n) for n in summary.group(2).replace(" ", "").split(",") if n)
            elif ops:  # a warning belongs to the op line above it
                last = ops[-1]
                ops[-1] = AnalyzedOp(last.subgraph, last.index, last.op, last.inputs, last.outputs, (*last.warnings, message))
    return AnalyzerReport(tuple(ops), flagged, "looks compatible with GPU delegate" in text)


@lru_cache(maxsize=1)
def analyzer_checks_gpu() -> bool:
    """Whether the installed analyzer's library holds the GPU checker (its warning text is in the binary)."""
    from edgezoo import _tf

    _tf.configure_environment()
    import importlib.util

    spec = importlib.util.find_spec("tensorflow.lite.python.analyzer_wrapper._pywrap_analyzer_wrapper")
    if spec is None or not spec.origin:
        return False
    return _WARNING.strip().encode() in Path(spec.origin).read_bytes()


# ---- the model's own tensors (dtype, shape, constness), read from the flatbuffer


@dataclass(frozen=True)
class _Op:
    index: int
    op: str
    name: str
    inputs: tuple[int, ...]  # tensor indices, optional (-1) left out
    outputs: tuple[int, ...]
    runtime_inputs: tuple[int, ...]  # inputs that are not constants


def _model(data: bytes) -> tuple[list[_Op], dict[int, tuple[str, tuple[int, ...]]], set[int]]:
    """Subgraph 0's ops in execution order, every tensor's (dtype, shape), and the tensors available before any op
    runs (graph inputs and constants)."""
    from edgezoo.formats.tflite.flatbuffer import dtype_name, open_model, readable

    with readable():
        model, codes = open_model(data)
        graph = model.Subgraphs(0)
        tensors: dict[int, tuple[str, tuple[int, ...]]] = {}
        constants: set[int] = set()
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            signature = tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else tensor.ShapeAsNumpy()
            shape = tuple(int(d) for d in signature) if not isinstance(signature, int) else ()
            tensors[t] = (dtype_name(tensor.Type()), shape)
            buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
            if buffer is not None and (buffer.DataLength() or buffer.Offset() > 1):
                constants.add(t)
        ops = []
        for o in range(graph.OperatorsLength()):
            operator = graph.Operators(o)
            inputs = tuple(int(t) for t in (operator.InputsAsNumpy() if operator.InputsLength() else ()) if t >= 0)
            outputs = tuple(int(t) for t in (operator.OutputsAsNumpy() if operator.OutputsLength() else ()) if t >= 0)
            name = (graph.Tensors(outputs[0]).Name() or b"").decode() if outputs else ""
            ops.append(_Op(o, codes[operator.OpcodeIndex()], name.split(";")[0], inputs, outputs,
                           tuple(t for t in inputs if t not in constants)))
        graph_inputs = {int(t) for t in graph.InputsAsNumpy()} if graph.InputsLength() else set()
    # Every tensor no op writes is there before the plan runs: graph inputs, constants, and variable (state) tensors, which
    # an op reads before the op that assigns them (an LSTM's state); waiting for those would wait for ever.
    written = {t for op in ops for t in op.outputs}
    return ops, tensors, graph_inputs | constants | (set(tensors) - written)


def rule_reason(op: _Op, tensors: dict[int, tuple[str, tuple[int, ...]]]) -> str:
    """The delegate's reason to reject an op by DELEGATE_OPS and the CAST rule, in gpu_compatibility.cc's words;
    empty when those rules accept it."""
    if reason := op_reason(op.op):
        return reason
    if op.op == "CAST" and op.inputs and op.outputs:
        source, target = tensors[op.inputs[0]][0], tensors[op.outputs[0]][0]
        floats = {"float16", "float32"}
        if not ((source == "bool" and target in floats) or (source in floats and target == "bool")
                or (source in {"float32", "int32"} and target in {"float32", "int32"})):
            names = {"float32": "FLOAT32", "float16": "FLOAT16", "int32": "INT32", "int64": "INT64", "bool": "BOOL"}
            return (f"Not supported Cast case. Input type: {names.get(source, source.upper())} and output type: "
                    f"{names.get(target, target.upper())}")
    return ""


def op_reason(op: str) -> str:
    """The delegate's op-level rule alone: "Not supported op X" for an op gpu_compatibility.cc has no case for."""
    if op in DELEGATE_CUSTOM_OPS or op in DELEGATE_OPS:
        return ""
    from edgezoo.formats.tflite.flatbuffer import builtin_op_names

    return f"Not supported op {op}" if op in builtin_op_names() else f"Not supported custom op {op}"


def planned_rejections(nodes) -> list[tuple[object, str]]:
    """(OpNode, reason) for each op of a model lowered before conversion (edgezoo/targets/op_check.py planned_ops) that
    the delegate's op-level rule rejects. OpNodes carry no tensors, so CAST's dtype rule and the partitions wait for the
    converted artifact, which place() judges in full."""
    return [(node, reason) for node in nodes if node.subgraph == 0 and (reason := op_reason(node.op))]


def partitions(ops: list[_Op], accepted: list[bool], available: set[int]) -> list[list[int]]:
    """The accepted subsets, as TFLite's PartitionGraphIntoIndependentNodeSubsets cuts the plan (see the module
    docstring); each a list of op indices."""
    ready = set(available)
    done = [False] * len(ops)
    subsets: list[tuple[bool, list[int]]] = []
    kind = accepted[0] if ops else True
    idle = 0  # passes in a row that took no op: two (one of each kind) mean no op can ever run
    while not all(done):
        subset = []
        for i, op in enumerate(ops):  # the plan is in topological order: one pass takes every op of this kind it can
            if not done[i] and accepted[i] == kind and all(t in ready for t in op.inputs):
                done[i] = True
                subset.append(i)
                ready.update(op.outputs)
        if subset:
            subsets.append((kind, subset))
            idle = 0
        else:
            idle += 1
            if idle == 2:
                raise CorruptModelError("the .tflite's execution plan reads tensors that no op writes before it")  # not a DAG in order
        kind = not kind
    return [subset for kind, subset in subsets if kind]


def place(artifact: str | Path | bytes) -> Placement:
    data = read_bytes(artifact)
    ops, tensors, available = _model(data)
    report = parse_analyzer(analyzer_text(data))
    checked = analyzer_checks_gpu()
    by_index = {op.index: op for op in report.ops if op.subgraph == 0}
    placements = []
    for op in ops:
        analyzed = by_index.get(op.index)
        if checked:
            reason = "; ".join(analyzed.warnings) if analyzed else ""
            if not reason and op.index in report.flagged.get(0, ()):
                reason = "flagged in the analyzer's summary line"
        else:
            reason = rule_reason(op, tensors)
        runtime = (*op.runtime_inputs, *op.outputs)
        placements.append(OpPlacement(
            index=op.index, op=op.op, placed_on=ACCEPTED_BY_DEFAULT if reason else PLACED_ON, reason=reason,
            dtypes=tuple(tensors[t][0] for t in runtime), shapes=tuple(tensors[t][1] for t in runtime), name=op.name,
        ))
    accepted = [not p.reason for p in placements]
    subsets = partitions(ops, accepted, available)
    notes = ["dtypes and shapes: the op's non-constant inputs, then its outputs (-1 where dynamic)",
             "the GPU delegate delegates the largest partition only unless max_delegated_partitions is raised"]
    if not checked:
        notes.append("TensorFlow's analyzer in this install has no GPU checker (it calls every model compatible): "
                     "verdicts from the delegate's op list instead, parameter checks not applied")
    return Placement(
        backend=BACKEND, ops=tuple(placements), partitions=len(subsets),
        source=("tf.lite.experimental.Analyzer (gpu_compatibility=True)" if checked else RULES_SOURCE),
        notes=tuple(notes),
        details={"partition_ops": subsets, "analyzer_ops_parsed": len(by_index),
                 "analyzer_says_compatible": report.says_compatible, "subgraphs_not_placed": _extra_subgraphs(report)},
    )


def _extra_subgraphs(report: AnalyzerReport) -> int:
    """Subgraphs past the main one (WHILE/IF bodies): the GPU delegate does not take control flow; not placed here."""
    return len({op.subgraph for op in report.ops if op.subgraph != 0})
