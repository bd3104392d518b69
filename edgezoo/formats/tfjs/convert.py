"""TF.js graph models through the tensorflowjs converter, from the canonical SavedModel's serving signature.

The model is a folder: `model.json` (graph, signature, weights manifest) and weight shards. The ops
TF.js would execute in the produced graph (after the converter's own optimisation, which strips debug
ops such as Assert and CheckNumerics) are checked against the op lists tensorflowjs ships
(`tensorflowjs/op_list/*.json`, what TF.js' runtime implements) before the model is called browser-ready.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgezoo import _tf
from edgezoo.formats.base import Artifact, ConversionRequest, FormatOptions, Quantization, describe_ops_by_layer, first_line
from edgezoo.errors import ConversionError, TargetConstraintError, UsageError
from edgezoo.zoo.base import LoadedModel

FORMAT = "tfjs"
MODEL_DIR = "tfjs_model"
MAIN_FILE = "model.json"
INTEGER_WEIGHTS = ("uint8", "uint16")
# Weight-only quantisation: TF.js stores weights in these types and computes in float32.
WEIGHT_TYPES = {Quantization.FLOAT32: None, Quantization.FLOAT16: "float16", Quantization.DYNAMIC_INT8: "integer"}


@dataclass(frozen=True)
class Options(FormatOptions):
    integer_weights: str = "uint8"  # what dynamic-int8 stores weights as: uint8, or uint16 (finer, twice the size)
    shard_size_bytes: int = 4 * 1024 * 1024  # browsers cache files of this size well

    def __post_init__(self):
        if self.integer_weights not in INTEGER_WEIGHTS:
            raise UsageError(f"integer_weights must be one of {', '.join(INTEGER_WEIGHTS)}, not {self.integer_weights!r}.")
        if not isinstance(self.shard_size_bytes, int) or isinstance(self.shard_size_bytes, bool) or self.shard_size_bytes < 1024:
            raise UsageError(f"shard_size_bytes must be a whole number of at least 1024, not {self.shard_size_bytes!r}.")


def weight_quantization(quantization: Quantization, options: Options) -> str | None:
    """The tensorflowjs weight type for a quantisation mode: None (float32), float16, uint8 or uint16."""
    if quantization not in WEIGHT_TYPES:
        raise UsageError(
            f"TF.js graph models quantise weights only: use float32, float16, or dynamic-int8 ({options.integer_weights} weights), "
            f"not {quantization.value}."
        )
    kind = WEIGHT_TYPES[quantization]
    return options.integer_weights if kind == "integer" else kind


def convert(model: LoadedModel, request: ConversionRequest, workdir: Path) -> Artifact:
    options = FormatOptions.of(request, Options)
    dtype = weight_quantization(request.quantization, options)
    _tf.tf()
    _quiet_tfdf()
    out = workdir / MODEL_DIR
    with _tf.quiet_native_output() as log:
        from tensorflowjs.converters import tf_saved_model_conversion_v2 as tfjs_converter

        try:
            tfjs_converter.convert_tf_saved_model(
                str(model.saved_model_dir),
                str(out),
                signature_def=model.signature_key,
                saved_model_tags="serve",
                quantization_dtype_map={dtype: True} if dtype else None,  # True: every float weight
                weight_shard_size_bytes=options.shard_size_bytes,
                skip_op_check=True,  # the produced graph is checked below, with the layers named
                # As tensorflowjs_converter does by default (its Python API does not): grappler's debug_stripper turns
                # Assert into NoOp and CheckNumerics/Print into Identity, which TF.js runs.
                strip_debug_ops=True,
            )
        except Exception as exc:  # the converter raises ValueError, KeyError, and TensorFlow's own errors
            detail = log.tail() if not _tf.is_verbose() else ""
            raise ConversionError(
                f"the tensorflowjs converter failed on {model.name}: {type(exc).__name__}: {first_line(exc)}\n{detail}\n"
                "Run with --verbose for the converter's full log."
            ) from exc
    model_json = json.loads((out / MAIN_FILE).read_text())
    check_ops(model_json, model.name)
    _name_signature(model_json, model)
    # Always rewritten, keys sorted: node attributes come from protobuf maps, in a different order in each process.
    (out / MAIN_FILE).write_text(json.dumps(model_json, sort_keys=True))
    _check_signature(model_json, model)
    shards = [out / path for group in model_json["weightsManifest"] for path in group["paths"]]
    return Artifact.of_model(
        model, request, format=FORMAT, files=(out / MAIN_FILE, *shards), ops=sorted({op for op, _ in graph_nodes(model_json)}),
        details={"weight_quantization": dtype or "none", "shards": len(shards), "shard_size_bytes": options.shard_size_bytes},
    )


def _quiet_tfdf() -> None:
    # tensorflowjs imports tensorflow_decision_forests, whose welcome message needs IPython when stdout is not a terminal
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")


def supported_ops() -> frozenset[str]:
    """The TensorFlow ops TF.js' graph model runtime implements, from the lists tensorflowjs ships."""
    from importlib import resources

    _quiet_tfdf()
    names = set()
    for entry in resources.files("tensorflowjs").joinpath("op_list").iterdir():
        if entry.name.endswith(".json"):
            names.update(op["tfOpName"] for op in json.loads(entry.read_text()))
    return frozenset(names)


def graph_nodes(model_json: dict) -> list[tuple[str, str]]:
    """(op, node name) of every node in a graph model, its control-flow functions included."""
    topology = model_json["modelTopology"]
    nodes = list(topology.get("node", []))
    for function in topology.get("library", {}).get("function", []):
        nodes.extend(function.get("nodeDef", []))
    return [(node["op"], node["name"]) for node in nodes]


def executed_nodes(model_json: dict) -> list[tuple[str, str]]:
    """(op, node name) of the nodes TF.js runs for the signature's outputs.

    Like TF.js' executor (getExecutionSubgraph): the nodes reached from the outputs through their data and
    control inputs, and every node of the functions those nodes call (If/While branches and bodies). A node
    nothing reaches is never run, so it cannot fail.
    """
    topology = model_json["modelTopology"]
    nodes = {node["name"]: node for node in topology.get("node", [])}
    functions = {f["signature"]["name"]: f.get("nodeDef", []) for f in topology.get("library", {}).get("function", [])}
    outputs = [entry["name"] for entry in model_json.get("signature", {}).get("outputs", {}).values()]
    pending = [_node_of(name) for name in outputs] if outputs else list(nodes)
    reached: dict[str, dict] = {}
    called: list[str] = []
    while pending:
        name = pending.pop()
        if name in reached or name not in nodes:
            continue
        reached[name] = nodes[name]
        pending.extend(_node_of(source) for source in nodes[name].get("input", []))
        called.extend(_called_functions(nodes[name]))
    executed = [(node["op"], node["name"]) for node in reached.values()]
    seen: set[str] = set()
    while called:
        function = called.pop()
        if function in seen or function not in functions:
            continue
        seen.add(function)
        for node in functions[function]:
            executed.append((node["op"], node["name"]))
            called.extend(_called_functions(node))
    return executed


def _node_of(tensor: str) -> str:
    """`^name` (a control input), `name:1` or `name` -> `name`."""
    return tensor.lstrip("^").split(":")[0]


def _called_functions(node: dict) -> list[str]:
    names = []
    for value in node.get("attr", {}).values():
        if "func" in value:
            names.append(value["func"].get("name", ""))
        names.extend(f.get("name", "") for f in value.get("list", {}).get("func", []))
    return names


def check_ops(model_json: dict, model_name: str) -> None:
    """Refuse a graph whose executed nodes use ops TF.js cannot run (exit 3), naming each op and the layers that use it."""
    known = supported_ops()
    unsupported = [(op, name) for op, name in executed_nodes(model_json) if op not in known]
    if unsupported:
        raise TargetConstraintError(
            f"{model_name} uses TensorFlow ops that TF.js cannot run: {describe_ops_by_layer(unsupported)}. "
            "Replace those layers with ones TF.js supports (tensorflowjs/op_list lists them), or choose another target."
        )


def _name_signature(model_json: dict, model: LoadedModel) -> bool:
    """Key model.json's signature by the signature's names; returns whether anything was renamed.

    The converter finds each name by matching shapes and falls back to the graph tensor's name
    (`Identity_1:0`) when two share a shape. The signature's own order is certain: its tensors come
    in the order of its sorted names, as tf.nest flattens a dict.
    """
    signature = model_json.setdefault("signature", {})
    expected = {"inputs": {spec.name for spec in model.inputs}, "outputs": {spec.name for spec in model.outputs}}
    if all(set(signature.get(kind, {})) == names for kind, names in expected.items()):
        return False
    tf = _tf.tf()
    with _tf.quiet_native_output():
        function = tf.saved_model.load(str(model.saved_model_dir)).signatures[model.signature_key]
    by_tensor = {
        "inputs": dict(zip((t.name for t in function.inputs), sorted(function.structured_input_signature[1]))),
        "outputs": dict(zip((t.name for t in function.outputs), sorted(function.structured_outputs))),
    }
    for kind, names in by_tensor.items():
        signature[kind] = {names.get(entry["name"], key): entry for key, entry in signature.get(kind, {}).items()}
    return True


def _check_signature(model_json: dict, model: LoadedModel) -> None:
    signature = model_json.get("signature", {})
    for kind, specs in (("inputs", model.inputs), ("outputs", model.outputs)):
        got = sorted(signature.get(kind, {}))
        if got != sorted(spec.name for spec in specs):
            raise ConversionError(
                f"the TF.js model of {model.name} has signature {kind} {', '.join(got) or 'none'} instead of "
                f"{', '.join(spec.name for spec in specs)}; the runners could not map them by name."
            )
