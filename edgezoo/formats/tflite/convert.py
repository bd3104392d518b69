"""TFLite through TensorFlow's TFLiteConverter, of the canonical SavedModel's serving signature: from the traced
signature's frozen graph where that gives the same model (tflite_frozen.py: several times quicker), else from the
SavedModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgezoo import _tf
from edgezoo.formats.tflite import frozen as tflite_frozen
from edgezoo.formats.base import Artifact, ConversionRequest, Quantization
from edgezoo.errors import CalibrationDataError, ConversionError
from edgezoo.zoo.base import LoadedModel

FORMAT = "tflite"
FILENAME = "model.tflite"


def build_converter(model: LoadedModel, request: ConversionRequest, *, frozen: bool = False):
    """A TFLiteConverter configured for the request (frozen: of the traced signature's frozen graph, tflite_frozen.py)."""
    tf = _tf.tf()
    converter = new_converter(model, frozen=frozen)
    order = tflite_frozen.input_order(tflite_frozen.traced_signature(model).traced()[1]) if frozen else None
    _configure(converter, tf, request, order)
    return converter


def new_converter(model: LoadedModel, *, frozen: bool = False):
    """A TFLiteConverter of the model's serving signature.

    frozen: the signature traced (for the target's fixed shapes, model.fixed_signature, or for its own) and lowered from
    its frozen graph (tflite_frozen.py: the file then has no SignatureDef until with_signature writes it). Otherwise
    through the SavedModel, as TensorFlow does by default: read from the folder, or, where the target fixed the input
    shapes, the traced function written to a temporary SavedModel and read back."""
    tf = _tf.tf()
    if frozen:
        loaded, concrete = tflite_frozen.traced_signature(model).traced()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
        converter.experimental_lower_to_saved_model = False
        return converter
    if model.fixed_signature is None:
        return tf.lite.TFLiteConverter.from_saved_model(str(model.saved_model_dir), signature_keys=[model.signature_key])
    loaded, concrete = model.fixed_signature.traced()
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)


def convert(model: LoadedModel, request: ConversionRequest, workdir: Path) -> Artifact:
    """From the frozen graph where that gives the same model (tflite_frozen.why_not), else, or when that fails, through the
    SavedModel; the report's details say which route made the file."""
    skipped = tflite_frozen.why_not(model)
    flatbuffer, failed = (None, None) if skipped else _convert_frozen(model, request)
    route = {"conversion_route": tflite_frozen.ROUTE_FROZEN}
    if flatbuffer is None:  # the report says why the quicker route did not make the file
        route = {"conversion_route": tflite_frozen.ROUTE_SAVED_MODEL, "frozen_route_not_used": skipped or failed}
        flatbuffer = _run(build_converter(model, request), model, request)
    path = workdir / FILENAME
    path.write_bytes(flatbuffer)
    return Artifact.of_model(model, request, format=FORMAT, files=(path,), ops=ops_used(flatbuffer),
                             details={**route, **state_details(flatbuffer)})


def _convert_frozen(model: LoadedModel, request: ConversionRequest) -> tuple[bytes | None, str | None]:
    """(the frozen-graph conversion with its SignatureDef written, None) or (None, why it could not be used): it failed
    or left TensorFlow (Flex) ops. The SavedModel route then makes the file, and says why if it fails too."""
    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

    converter = build_converter(model, request, frozen=True)
    with _tf.quiet_native_output():
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # noqa: BLE001 - any failure of the quicker route leaves the SavedModel one
            return None, f"the frozen-graph conversion failed: {type(exc).__name__}: {_first_line(exc)}"
    flex = sorted({node.op for node in read_flatbuffer(flatbuffer).ops if node.op.startswith("Flex")})
    if flex:
        return None, f"the frozen graph lowers to TensorFlow ops ({', '.join(flex)})"
    _, concrete = tflite_frozen.traced_signature(model).traced()
    try:
        return tflite_frozen.with_signature(flatbuffer, model.signature_key, tflite_frozen.input_order(concrete),
                                            tflite_frozen.output_order(concrete)), None
    except ValueError as exc:
        return None, f"its SignatureDef could not be written: {_first_line(exc)}"


def _run(converter, model: LoadedModel, request: ConversionRequest) -> bytes:
    with _tf.quiet_native_output() as log:
        try:
            return converter.convert()
        except Exception as exc:
            detail = log.tail() if not _tf.is_verbose() else ""
            raise ConversionError(
                f"TFLite conversion of {model.name} ({request.quantization.value}) failed: {type(exc).__name__}: "
                f"{_first_line(exc)}\n{detail}\nRun with --verbose for the converter's full log."
            ) from exc


def state_details(flatbuffer: bytes) -> dict:
    """What the report must say about state the model keeps between invocations (none for most models)."""
    from edgezoo.formats.tflite.flatbuffer import variable_tensors

    names = variable_tensors(flatbuffer)
    if not names:
        return {}
    return {"variable_tensors": list(names), "state_note": (
        f"the model keeps state in {len(names)} variable tensor(s) from one invocation to the next (a fused recurrent layer); "
        "the original starts every call from zero, so reset the interpreter's variables before each independent input "
        "(LiteRT: interpreter.reset_all_variables(); TFLM: MicroInterpreter::Reset()), as the parity check does.")}


def _configure(converter, tf, request: ConversionRequest, input_order: list[str] | None = None) -> None:
    """input_order: a frozen graph's inputs, which take calibration samples as lists in this order (it has no signature)."""
    quantization = request.quantization
    if quantization is Quantization.FLOAT32:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization is Quantization.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    elif quantization is Quantization.DYNAMIC_INT8:
        pass  # Optimize.DEFAULT without a representative dataset quantises weights only
    else:
        if request.calibration is None:
            raise CalibrationDataError(f"{quantization.value} quantisation needs calibration data; pass --calibration.")
        calibration = request.calibration
        if input_order is None:
            # By name: with a signature the calibrator maps dict samples to the right inputs, whatever their order.
            converter.representative_dataset = lambda: (dict(sample) for sample in calibration.representative_samples())
        else:
            converter.representative_dataset = lambda: ([sample[name] for name in input_order]
                                                         for sample in calibration.representative_samples())
        if quantization is Quantization.INT8:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
            io_type = tf.int16
        if request.integer_io:
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type


def ops_used(flatbuffer: bytes) -> tuple[str, ...]:
    """The distinct builtin or custom op names in a .tflite model, sorted."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return tuple(sorted({op["op_name"] for op in interpreter._get_ops_details()}))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def takes_shape(detail: dict, shape: tuple[int, ...]) -> bool:
    """Whether an input tensor takes an array of `shape`: the same rank, and every static dimension equal.

    Dynamic dimensions (-1 in the tensor's shape_signature) take any size: interpreters resize them to the data.
    """
    signature = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
    return len(signature) == len(shape) and all(s in (-1, d) for s, d in zip(signature, shape))


def shape_signature(detail: dict) -> str:
    """An input tensor's shape as people read it: [?, ?, ?, 3] where dynamic."""
    return "[" + ", ".join("?" if d == -1 else str(d) for d in detail.get("shape_signature", detail["shape"])) + "]"


def set_inputs(interpreter, arrays: list[np.ndarray]) -> None:
    """Feed a plain Interpreter (not a signature runner) inputs in its own input order, resizing its dynamic dimensions to
    the arrays' shapes first: a tensor allocated at [1, 1, 1, 3] must be resized before it takes a [1, 48, 64, 3] image."""
    details = interpreter.get_input_details()
    resized = False
    for detail, array in zip(details, arrays):
        if not takes_shape(detail, array.shape):
            raise ValueError(f"input {detail['name']} takes {shape_signature(detail)}, not {list(array.shape)}")
        if tuple(detail["shape"]) != array.shape:
            interpreter.resize_tensor_input(detail["index"], list(array.shape))
            resized = True
    if resized:
        interpreter.allocate_tensors()
    for detail, array in zip(details, arrays):
        interpreter.set_tensor(detail["index"], array)


def quantize_input(array: np.ndarray, detail: dict) -> np.ndarray:
    """Float model inputs to an integer tensor's values, with the tensor's scale and zero point. An integer tensor with
    no scale is not quantised (token ids, a uint8 image the graph casts itself): its values go in as they are."""
    scale, zero_point = detail["quantization"]
    if not scale:
        return array.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def dequantize_output(array: np.ndarray, detail: dict) -> np.ndarray:
    """An integer output's real values; one with no scale (class indices, counts) is not quantised and is returned as it is."""
    scale, zero_point = detail["quantization"]
    if not scale:
        return array
    return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)
