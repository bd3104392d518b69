"""The TFLite conversion from the frozen graph of the traced serving signature, and when it may not be used.

TFLiteConverter reads a SavedModel, or a traced function lowered to a temporary SavedModel first, through MLIR's
SavedModel importer: about 10 s of a float16 conversion of MobileNetV2 here. The same signature traced once, its
variables frozen into constants and converted as a graph takes about 2.5 s and gives the same ops and outputs. What
the frozen graph loses is handled here:

- The file has no SignatureDef, by which the runners and edgezoo's readers map tensors: it is written into the file,
  the signature's names on the subgraph's inputs and outputs, which the converter keeps in the traced function's
  order (its flattened inputs; its outputs in sorted name order, as a dict flattens).
- Functions are inlined, so the composite ops the converter fuses from annotated functions (`experimental_implements`:
  TFLite_Detection_PostProcess; Keras' LSTM, `api_implements`) and control flow (While loops over TensorLists) would
  lower to other ops: models holding them go the SavedModel way (`why_not`).
- A frozen conversion that fails, or leaves TensorFlow (Flex) ops in the file, is done again the SavedModel way.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from edgezoo import _tf
from edgezoo.zoo.base import LoadedModel

ROUTE_FROZEN = "frozen graph of the traced signature"
ROUTE_SAVED_MODEL = "SavedModel"
FUSED_ANNOTATIONS = frozenset({"_implements", "api_implements"})  # FunctionDef attributes the converter fuses by
CONTROL_FLOW_OPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})


def why_not(model: LoadedModel) -> str | None:
    """Why this model must be converted the SavedModel way, or None when the frozen graph gives the same model."""
    annotated, ops = _graph_facts(Path(model.saved_model_dir))
    if annotated:
        return f"its functions carry {', '.join(sorted(annotated))}, composite ops the converter fuses only from the SavedModel"
    if flow := sorted(ops & CONTROL_FLOW_OPS) + sorted(op for op in ops if op.startswith("TensorList")):
        return f"its graph holds {', '.join(flow[:4])}, control flow the converter lowers to builtins only from the SavedModel"
    return None


@lru_cache(maxsize=8)
def _graph_facts(saved_model_dir: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(the fusing annotations on its functions, every op type), read from saved_model.pb."""
    from edgezoo.zoo.base import saved_model_proto

    _tf.tf()  # its environment first: saved_model_proto imports TensorFlow's protocol buffers
    annotated, ops = set(), set()
    for graph in saved_model_proto(saved_model_dir).meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            annotated.update(FUSED_ANNOTATIONS & set(function.attr.keys()))
            ops.update(node.op for node in function.node_def)
    return frozenset(annotated), frozenset(ops)


def traced_signature(model: LoadedModel):
    """The FixedSignature the conversion reads: the target's (fixed shapes), or the model's own shapes traced once per
    process (the op check and every conversion of a quantisation loop share it)."""
    if model.fixed_signature is not None:
        return model.fixed_signature
    return _own_signature(Path(model.saved_model_dir), model.signature_key, tuple(model.inputs))


@lru_cache(maxsize=2)
def _own_signature(saved_model_dir: Path, signature_key: str, inputs: tuple):
    from edgezoo.zoo.signature import FixedSignature

    source = LoadedModel(name="", source="", saved_model_dir=saved_model_dir, inputs=inputs, outputs=(), sha256="",
                         signature_key=signature_key)
    return FixedSignature(source, {})


def forget_traces() -> None:
    """Drop the traces kept for models without fixed shapes (benchmarks: every call starts from the files)."""
    _own_signature.cache_clear()


def input_order(concrete) -> list[str]:
    """The signature's input names in the order of the converted model's inputs (the traced function's flattened ones)."""
    return [spec.name for spec in _tf.tf().nest.flatten(concrete.structured_input_signature)]


def output_order(concrete) -> list[str]:
    """The signature's output names in the order of the converted model's outputs (a dict flattens by sorted key)."""
    return sorted(concrete.structured_outputs)


def with_signature(flatbuffer: bytes, signature_key: str, inputs: list[str], outputs: list[str]) -> bytes:
    """The model with a SignatureDef naming its main subgraph's inputs and outputs, in their order. Refused (ValueError)
    when the counts differ: the converter merged or dropped an output, and the names cannot be placed."""
    from edgezoo.formats.tflite.flatbuffer import schema as tflite_schema
    from edgezoo.formats.tflite.repack import repack

    schema = tflite_schema()

    def name(model) -> None:
        subgraph = model.subgraphs[0]
        if len(subgraph.inputs) != len(inputs) or len(subgraph.outputs) != len(outputs):
            raise ValueError(f"the frozen graph's model has {len(subgraph.inputs)} inputs and {len(subgraph.outputs)} outputs, "
                             f"the signature {len(inputs)} and {len(outputs)}")
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = signature_key, 0
        signature.inputs = [_tensor_map(schema, n, index) for n, index in zip(inputs, subgraph.inputs)]
        signature.outputs = [_tensor_map(schema, n, index) for n, index in zip(outputs, subgraph.outputs)]
        model.signatureDefs = [signature]

    return repack(flatbuffer, name, "name its signature")


def _tensor_map(schema, name: str, index: int):
    entry = schema.TensorMapT()
    entry.name, entry.tensorIndex = name, int(index)
    return entry
