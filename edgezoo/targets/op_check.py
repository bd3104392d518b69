"""Op sets: the ops a device's runtime implements, checked before conversion and on the artifact.

An op set is one module with `OP_SET`, `DESCRIPTION` and `supported_ops() -> frozenset[str]`,
plus one entry in OP_SETS; a profile names it with `op_set = "..."`. It may also have
`float_only_ops() -> frozenset[str]`: ops its runtime runs in float only, refused in full-integer models.

Before conversion, the model is lowered to TFLite ops in memory (float, no quantisation and no
calibration: the cheap part of a conversion, from the signature traced for the target's shapes that the
conversion then reads too) with TensorFlow ops allowed as Flex ops, so that every
op the device lacks is found and named with the layer it comes from, before the slow int8
conversion and its calibration run. The converted artifact is checked again, since quantisation
can change the ops. The ops are judged as the TFLite converter emits them (Assert, CheckNumerics and
the like do not lower), never on the TensorFlow graph.

In a full-integer (int8) model every float op of the lowered model becomes an int8 op, unless the
converter keeps it in float; so an op whose kernels are float-only is refused before conversion, and
again on the converted model, where each op's input dtype is read from the file.
"""

from __future__ import annotations

from types import ModuleType

from edgezoo import _tf
from edgezoo.formats.base import Artifact, describe_ops_by_layer, layer_of
from edgezoo.formats.tflite import OpNode, read_flatbuffer
from edgezoo.errors import ConversionError, TargetConstraintError, UsageError
from edgezoo.zoo.base import LoadedModel

OP_SETS = {"tflm": ("tflite", "tflm_ops")}  # op set -> (format, its module of kernel tables)


def op_set(name: str) -> ModuleType:
    from edgezoo.formats import part

    try:
        format_name, module = OP_SETS[name]
    except KeyError:
        raise UsageError(f"unknown op set '{name}'. Known op sets: {', '.join(OP_SETS)}.") from None
    return part(format_name, module)


def planned_ops(model: LoadedModel) -> tuple[OpNode, ...]:
    """The TFLite ops the model lowers to, each with the TensorFlow node (layer) it comes from.

    As the conversion lowers it (formats/tflite/frozen.py): from the frozen graph of the signature traced once for the
    op check and the conversion (the same ops and layer names, a fraction of the time), should that fail, or where the
    model needs it, through the SavedModel. The converted artifact is checked again in any case."""
    from edgezoo.formats.tflite import frozen as tflite_frozen
    from edgezoo.formats.tflite import new_converter

    if tflite_frozen.why_not(model) is None:
        converter = new_converter(model, frozen=True)
        try:
            ops = _lowered_ops(model, converter)
        except ConversionError:
            ops = None  # the SavedModel route below says what is wrong, if it fails too
        # The frozen graph may not fuse what the SavedModel route does (a TensorList loop becomes Flex ops there, one
        # fused op here): Flex ops found that way are confirmed the usual way.
        if ops is not None and not any(op.op.startswith("Flex") for op in ops):
            return ops
    return _lowered_ops(model, new_converter(model))


def _lowered_ops(model: LoadedModel, converter) -> tuple[OpNode, ...]:
    """The ops of the model lowered with TensorFlow ops allowed (as Flex ops) and custom ops kept."""
    tf = _tf.tf()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.allow_custom_ops = True
    with _tf.quiet_native_output() as log:
        try:
            return read_flatbuffer(converter.convert(), model.signature_key).ops
        except Exception as exc:
            raise ConversionError(
                f"cannot lower {model.name} to TFLite ops to check them: {type(exc).__name__}: {str(exc).strip()[:500]}\n{log.tail()}"
            ) from exc


def _unsupported(nodes, supported: frozenset[str]) -> list[tuple[str, str]]:
    return [(node.op, node.node_name) for node in nodes if node.op not in supported]


def _refuse(missing: list[tuple[str, str]], set_name: str, what: str) -> None:
    if not missing:
        return
    names = sorted({op for op, _ in missing})
    module = op_set(set_name)
    raise TargetConstraintError(
        f"{what} uses {len(names)} op(s) that {module.DESCRIPTION} ({set_name}) lack: {describe_ops_by_layer(missing)}. "
        "Replace those layers with supported ones (see `edgezoo targets show` for the op set), or choose another target."
    )


def _float_only(nodes, set_name: str, reads: tuple[str, ...]) -> list[tuple[str, str]]:
    """(op, node) of the ops reading one of `reads` whose kernels in the op set take float only."""
    listed = getattr(op_set(set_name), "float_only_ops", lambda: frozenset())()
    return [(node.op, node.node_name) for node in nodes if node.op in listed and set(node.input_dtypes) & set(reads)]


def _refuse_float_only(found: list[tuple[str, str]], set_name: str, what: str, dtype: str, when: str) -> None:
    if not found:
        return
    module = op_set(set_name)
    ops = sorted({op for op, _ in found})
    layers = list(dict.fromkeys(layer_of(node) for _, node in found))
    raise TargetConstraintError(
        f"{what} needs {', '.join(ops)} on {dtype}, which {module.DESCRIPTION} ({set_name}) run in float only: "
        f"{describe_ops_by_layer(found)} ({when}). {module.int8_advice(ops, layers)}"
    )


def check_before_conversion(model: LoadedModel, set_name: str, full_integer: bool = False) -> tuple[str, ...]:
    """Refuse a model whose ops the op set lacks, or runs in float only when the model is to be full-integer,
    naming each op and its layer; returns the planned op names."""
    nodes = planned_ops(model)
    _refuse(_unsupported(nodes, op_set(set_name).supported_ops()), set_name, f"{model.name}")
    if full_integer:
        # The int8 conversion turns the float ops of the lowered model into int8 ones.
        found = _float_only(nodes, set_name, ("float32",))
        _refuse_float_only(found, set_name, f"{model.name} as a full-integer model", "int8",
                           "found before conversion, in the model lowered to TFLite ops")
    return tuple(sorted({node.op for node in nodes}))


def check_artifact(artifact: Artifact, set_name: str) -> None:
    """The converted model again: quantisation may add ops (QUANTIZE, DEQUANTIZE), keep float ones, or make int8 ones
    whose kernels take float only."""
    nodes = read_flatbuffer(artifact.path.read_bytes()).ops
    what = f"the converted {artifact.path.name}"
    _refuse(_unsupported(nodes, op_set(set_name).supported_ops()), set_name, what)
    _refuse_float_only(_float_only(nodes, set_name, ("int8", "int16")), set_name, what, "integer inputs",
                       "read from the converted model")
