"""Static shapes: a model's inputs fixed to given shapes before conversion.

The shapes come from `--input-shape NAME=1,48,64,3` (ConvertOptions.input_shapes), a profile's
`input_shapes` table, and a profile's `fixed_batch` (the batch alone, for the inputs whose other
dimensions are already static); the command line wins over the profile. A converter given a
SavedModel with dynamic dimensions keeps them dynamic (shape_signature -1) and emits
SHAPE/STRIDED_SLICE/PACK ops that compute them at run time (MobileNet's Reshape layers): ops, arena
and dynamic shapes that TensorFlow Lite Micro, which plans all memory ahead, cannot handle.
Re-tracing the serving signature with fixed input specs removes both, for every format: saved as a
new SavedModel for the converters that read one (tf2onnx, tensorflowjs), kept in memory for TFLite,
whose converter reads the traced function itself (FixedSignature: nothing written and read back).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import CalibrationDataError, TargetConstraintError, UsageError
from edgezoo.zoo.base import LoadedModel, TensorSpec, read_signature
from edgezoo.zoo.signature import FixedSignature, traced_signature  # noqa: F401 (fix_shapes traces through them)

Shape = tuple[int, ...]
FLAG = "--input-shape"
SYNTAX = f"{FLAG} takes NAME=D0,D1,... (e.g. image=1,48,64,3), or D0,D1,... for a model with one input"


def show(shape) -> str:
    """(None, None, None, 3) -> [?, ?, ?, 3]"""
    return "[" + ", ".join("?" if d is None or d == -1 else str(d) for d in shape) + "]"


def as_flag(name: str, shape: Shape) -> str:
    return f"{FLAG} {name}={','.join(map(str, shape))}"


def flag_to_fill(name: str, shape, batch: int = 1) -> str:
    """The --input-shape a user completes: (None, None, None, 3) -> `--input-shape image=1,D,D,3`."""
    return f"{FLAG} {name}=" + ",".join([str(batch)] + ["D" if d is None else str(d) for d in shape[1:]])


# --- what the user asks for ---------------------------------------------------------------------


def parse_input_shape(text: str) -> tuple[str, Shape]:
    """`image=1,48,64,3` -> ("image", (1, 48, 64, 3)); `1,48,64,3` -> ("", ...), the lone input of a one-input model."""
    name, _, dims = str(text).rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise UsageError(f"{SYNTAX}; got '{text}'.") from None
    return name.strip(), shape


def normalise_input_shapes(value) -> tuple[tuple[str, Shape], ...]:
    """Input shapes as the API and the CLI give them -- {name: shape}, ["image=1,48,64,3", ...], [(name, shape), ...],
    or one shape (1, 48, 64, 3) for a one-input model -- as ((name, shape), ...); name "" for the lone input."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = [parse_input_shape(value)]
    elif value and all(isinstance(d, int) for d in value):
        pairs = [("", tuple(value))]
    else:
        pairs = [parse_input_shape(item) if isinstance(item, str) else tuple(item) for item in value]
    result = []
    for pair in pairs:
        if len(pair) != 2:
            raise UsageError(f"{SYNTAX}; got {pair!r}.")
        name, shape = str(pair[0]), pair[1]
        label = f"{name}=" if name else ""
        if isinstance(shape, (str, int)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise UsageError(f"{FLAG} {label}{shape}: the dimensions must be whole numbers ({SYNTAX}).")
        shape = tuple(int(d) for d in shape)
        if not shape or any(d < 1 for d in shape):
            raise UsageError(f"{FLAG} {label}{','.join(map(str, shape))}: every dimension of input '{name or 'the input'}' must be "
                             "at least 1 (a fixed size, batch first).")
        result.append((name, shape))
    names = [name for name, _ in result]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            raise UsageError(f"{FLAG} gives input '{name or 'the unnamed input'}' more than one shape; give each input once.")
    if "" in names and len(names) > 1:
        raise UsageError(f"{FLAG} without a name is for a model with one input; with several, name each: NAME=D0,D1,...")
    return tuple(result)


# --- the shapes a target converts for -----------------------------------------------------------


@dataclass(frozen=True)
class FixedShape:
    shape: Shape
    origin: str  # where it was asked for, for messages: "--input-shape", "target 'x' input_shapes", "target 'x' fixed_batch = 1"


def checked_shapes(model: LoadedModel, given: tuple[tuple[str, Shape], ...], origin: str) -> dict[str, FixedShape]:
    """Given shapes by input name, checked against the model: a known input, the same rank, no static dimension contradicted."""
    return check_against(model.name, {spec.name: spec.shape for spec in model.inputs}, given, origin)


def check_against(owner: str, inputs: dict[str, tuple], given: tuple[tuple[str, Shape], ...], origin: str = FLAG) -> dict[str, FixedShape]:
    """`checked_shapes` for any model or artifact: `inputs` maps its input names to shapes (None where dynamic)."""
    checked = {}
    for name, shape in given:
        flag = f"{origin} {name + '=' if name else ''}{','.join(map(str, shape))}"
        if not name:
            if len(inputs) != 1:
                raise UsageError(f"{flag} names no input, but {owner} takes {len(inputs)}: {', '.join(inputs)}. "
                                 f"Name it: {FLAG} NAME=D0,D1,...")
            name = next(iter(inputs))
        if name not in inputs:
            known = ", ".join(f"{n} {show(s)}" for n, s in inputs.items())
            raise UsageError(f"{flag}: {owner} has no input '{name}'; its inputs: {known}.")
        spec = inputs[name]
        if len(shape) != len(spec):
            raise UsageError(f"{flag}: input '{name}' of {owner} has rank {len(spec)} {show(spec)}, "
                             f"but the shape given has {len(shape)} dimensions.")
        clashes = [f"dimension {axis} is {want}" for axis, (want, got) in enumerate(zip(spec, shape)) if want is not None and want != got]
        if clashes:
            raise UsageError(f"{flag} contradicts input '{name}' of {owner}, {show(spec)}: its {', '.join(clashes)}. "
                             "Only the dynamic (?) dimensions can be fixed.")
        checked[name] = FixedShape(shape, origin)
    return checked


def given_shapes(model: LoadedModel, profile, requested: tuple[tuple[str, Shape], ...] = ()) -> dict[str, FixedShape]:
    """The shapes asked for this target: the profile's input_shapes, overridden input by input by --input-shape."""
    shapes = checked_shapes(model, profile.input_shapes, f"target '{profile.name}' input_shapes")
    shapes.update(checked_shapes(model, requested, FLAG))
    return shapes


def shapes_for_data(model: LoadedModel, profiles, requested: tuple[tuple[str, Shape], ...] = ()) -> dict[str, Shape]:
    """Checks --input-shape and every profile's input_shapes against the model (a usage error before any slow work); returns
    the shapes synthetic data should have: --input-shape's, else the first profile's that fixes the input."""
    shapes: dict[str, Shape] = {}
    for profile in reversed(list(profiles)):
        shapes.update({name: fixed.shape for name, fixed in given_shapes(model, profile).items()})
    shapes.update({name: fixed.shape for name, fixed in checked_shapes(model, requested, FLAG).items()})
    return shapes


def target_shapes(model: LoadedModel, target: str, *, fixed_batch: int | None = None, given: dict[str, FixedShape] | None = None,
                  data_shapes: dict[str, Shape] | None = None) -> dict[str, FixedShape]:
    """Every input shape the target's model is fixed to (inputs left out stay as they are).

    With a `fixed_batch`, every input becomes static: the given shapes must have that batch, and the other inputs must have no
    dynamic dimension but the batch; otherwise the refusal suggests --input-shape with `data_shapes`, the shapes of the
    calibration samples (never picked silently: the size the device feeds is the user's decision).
    """
    shapes = dict(given or {})
    if fixed_batch is None:
        return shapes
    batch, dynamic = fixed_batch, []
    for spec in model.inputs:
        if spec.name in shapes:
            fixed = shapes[spec.name]
            if fixed.shape[0] != batch:
                raise UsageError(f"{fixed.origin} {spec.name}={','.join(map(str, fixed.shape))} has a batch of {fixed.shape[0]}, but "
                                 f"target '{target}' fixes the batch to {batch} (fixed_batch); give {batch} as the first dimension.")
            continue
        if not spec.shape:
            raise TargetConstraintError(f"input '{spec.name}' of {model.name} is a scalar; a fixed batch needs a batch dimension.")
        if spec.shape[0] is not None and spec.shape[0] != batch:
            raise TargetConstraintError(
                f"input '{spec.name}' of {model.name} has a static batch of {spec.shape[0]}, but target '{target}' needs {batch}. "
                "Re-export the model with a dynamic or matching batch dimension."
            )
        if any(d is None for d in spec.shape[1:]):
            dynamic.append(spec)
            continue
        shapes[spec.name] = FixedShape((batch, *spec.shape[1:]), f"target '{target}' fixed_batch = {batch}")
    if dynamic:
        raise TargetConstraintError(_dynamic_refusal(model, target, batch, dynamic, data_shapes or {}))
    return shapes


def _dynamic_refusal(model: LoadedModel, target: str, batch: int, dynamic: list[TensorSpec], data_shapes: dict[str, Shape]) -> str:
    described = ", ".join(f"'{spec.name}' {show(spec.shape)}" for spec in dynamic)
    has = "has" if len(dynamic) == 1 else "have"
    text = (f"input{'s' * (len(dynamic) > 1)} {described} of {model.name} {has} dynamic dimensions besides the batch, and "
            f"target '{target}' needs static shapes. ")
    seen = {spec.name: data_shapes.get(spec.name) for spec in dynamic}
    if all(seen.values()):
        flags = " ".join(as_flag(name, (batch, *shape)) for name, shape in seen.items())
        table = ", ".join(f"{name} = [{', '.join(map(str, (batch, *shape)))}]" for name, shape in seen.items())
        return text + (f"The calibration data has one fixed shape: use {flags} (the shape of the calibration data), or "
                       f"input_shapes = {{ {table} }} in a profile that extends {target}.")
    flags = " ".join(flag_to_fill(spec.name, spec.shape, batch) for spec in dynamic)
    return text + f"Fix the size the device will feed with {flags} (each D a size), and give calibration data of that size."


def check_data_shapes(shapes: dict[str, FixedShape], data, target: str) -> None:
    """Calibration and held-out samples must have the non-batch dimensions the target's model is fixed to."""
    for name, fixed in shapes.items():
        for split, arrays in (("calibration", data.calibration), ("held-out", data.heldout)):
            if name in arrays and tuple(arrays[name].shape[1:]) != fixed.shape[1:]:
                got = tuple(arrays[name].shape[1:])
                raise CalibrationDataError(
                    f"the {split} data of input '{name}' has samples of shape {show(got)}, but target '{target}' fixes the input to "
                    f"{show(fixed.shape)} ({fixed.origin}). Give data of that size, or fix the input to the data's size: "
                    f"{as_flag(name, (fixed.shape[0], *got))}."
                )


# --- re-tracing -----------------------------------------------------------------------------------


def batch_shapes(model: LoadedModel, batch: int) -> dict[str, Shape]:
    """Every input with this batch and its other dimensions as they are; refused when one of them is dynamic."""
    return {name: fixed.shape for name, fixed in target_shapes(model, f"batch {batch}", fixed_batch=batch).items()}


def fix_shapes(model: LoadedModel, shapes: dict[str, Shape], *, resave: bool = True) -> LoadedModel:
    """The same model with inputs of these static shapes (and its outputs what follows from them).

    resave=True writes a new SavedModel, which every converter reads; resave=False only traces the signature for the shapes
    (model.fixed_signature), which the TFLite converter reads: no SavedModel written and read back (prepare_model for
    TFLite targets)."""
    if all(spec.shape == tuple(shapes.get(spec.name, spec.shape)) for spec in model.inputs):
        return model
    if model.batch_one_saved_model is not None and shapes == {spec.name: (1, *spec.shape[1:]) for spec in model.inputs}:
        # A Keras 3 recurrent model, exported at batch 1 when loaded (zoo/local.py): tracing the dynamic export again would
        # keep its recurrent loop's dynamic TensorList, which TFLite cannot lower (TFLM would need Flex ops).
        inputs, outputs = read_signature(model.batch_one_saved_model, model.signature_key)
        return dataclasses.replace(model, saved_model_dir=model.batch_one_saved_model, inputs=inputs, outputs=outputs,
                                   fixed_signature=None, batch_one_saved_model=None)
    shown = ", ".join(f"{name} {show(shape)}" for name, shape in shapes.items())
    if not resave:
        fixed = FixedSignature(model, shapes)  # over the original SavedModel, with any earlier fixed shapes kept
        try:
            outputs = fixed.outputs()
        except Exception as exc:
            raise TargetConstraintError(f"cannot fix the input shapes of {model.name} to {shown}: {type(exc).__name__}: {exc}") from exc
        return dataclasses.replace(model, inputs=fixed.inputs, outputs=outputs, fixed_signature=fixed)
    tf = _tf.tf()
    loaded, concrete = traced_signature(model, shapes)  # `loaded` owns the variables until they are saved
    holder = tf.Module()
    holder.weights = list(concrete.variables)  # only what the signature reads: far quicker than the whole object graph
    target = scratch_dir("fixed-shape-") / "saved_model"
    try:
        with _tf.quiet_native_output():
            tf.saved_model.save(holder, str(target), signatures={model.signature_key: concrete})
    except Exception as exc:
        raise TargetConstraintError(f"cannot fix the input shapes of {model.name} to {shown}: {type(exc).__name__}: {exc}") from exc
    inputs, outputs = read_signature(target, model.signature_key)
    return dataclasses.replace(model, saved_model_dir=target, inputs=inputs, outputs=outputs, fixed_signature=None)


# A recurrent layer traced with a dynamic batch keeps TensorList ops (TensorListReserve of an element shape [?, units])
# that the TFLite converter cannot lower to builtins; with a static batch it fuses the layer (UNIDIRECTIONAL_SEQUENCE_LSTM).
TENSOR_LIST_OPS = frozenset({"TensorListReserve", "TensorListFromTensor", "TensorListStack", "TensorListSetItem", "TensorListGetItem"})


def tflite_needs_static_batch(model: LoadedModel) -> str | None:
    """Why a TFLite conversion of this model needs its batch fixed to 1 first, or None."""
    if not any(spec.shape and spec.shape[0] is None for spec in model.inputs):
        return None
    from edgezoo.zoo.base import graph_op_names

    found = sorted(graph_op_names(model.saved_model_dir) & TENSOR_LIST_OPS)
    if not found:
        return None
    return (f"its graph holds {', '.join(found)} (a recurrent layer), which the TFLite converter lowers to builtin ops "
            "only with a static batch")


def with_batch_of_one(model: LoadedModel, why: str, *, resave: bool = True) -> LoadedModel:
    """The model with its batch fixed to 1 (other dimensions as they are), the reason kept in its details."""
    fixed = fix_shapes(model, {spec.name: (1, *spec.shape[1:]) for spec in model.inputs}, resave=resave)
    note = {"batch": 1, "why": why}
    return dataclasses.replace(fixed, details={**fixed.details, "batch_fixed_for_conversion": note})
