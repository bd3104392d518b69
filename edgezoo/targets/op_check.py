"""Op sets: the ops a device's runtime implements, checked before conversion and on the artifact.

An op set is one module with `OP_SET`, `DESCRIPTION` and `supported_ops() -> frozenset[str]`,
plus one entry in OP_SETS; a profile names it with `op_set = "..."`.

Before conversion, the model is lowered to TFLite ops in memory (float, no quantisation and no
calibration: the cheap part of a conversion) with TensorFlow ops allowed as Flex ops, so that every
op the device lacks is found and named with the layer it comes from, before the slow int8
conversion and its calibration run. The converted artifact is checked again, since quantisation
can change the ops.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgezoo import _tf
from edgezoo.converter.base import Artifact, describe_ops_by_layer
from edgezoo.converter.tflite_flatbuffer import OpNode, read_flatbuffer
from edgezoo.errors import ConversionError, TargetConstraintError, UsageError
from edgezoo.zoo.base import LoadedModel

OP_SETS = {
    "tflm": "edgezoo.targets.tflm_ops",
}


def op_set(name: str) -> ModuleType:
    try:
        return importlib.import_module(OP_SETS[name])
    except KeyError:
        raise UsageError(f"unknown op set '{name}'. Known op sets: {', '.join(OP_SETS)}.") from None


def planned_ops(model: LoadedModel) -> tuple[OpNode, ...]:
    """The TFLite ops the model lowers to, each with the TensorFlow node (layer) it comes from."""
    tf = _tf.tf()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(model.saved_model_dir), signature_keys=[model.signature_key])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.allow_custom_ops = True
    with _tf.quiet_native_output() as log:
        try:
            flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(
                f"cannot lower {model.name} to TFLite ops to check them: {type(exc).__name__}: {str(exc).strip()[:500]}\n{log.tail()}"
            ) from exc
    return read_flatbuffer(flatbuffer, model.signature_key).ops


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


def check_before_conversion(model: LoadedModel, set_name: str) -> tuple[str, ...]:
    """Refuse a model whose ops the op set lacks, naming each op and its layer; returns the planned op names."""
    nodes = planned_ops(model)
    _refuse(_unsupported(nodes, op_set(set_name).supported_ops()), set_name, f"{model.name}")
    return tuple(sorted({node.op for node in nodes}))


def check_artifact(artifact: Artifact, set_name: str) -> None:
    """The converted model again: quantisation may add ops (QUANTIZE, DEQUANTIZE) or keep float ones."""
    nodes = read_flatbuffer(artifact.path.read_bytes()).ops
    _refuse(_unsupported(nodes, op_set(set_name).supported_ops()), set_name, f"the converted {artifact.path.name}")
