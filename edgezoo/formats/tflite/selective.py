"""Selective quantisation of a float32 .tflite with ai-edge-quantizer: the ops named stay float, the others compute in int8.

TFLite's own converter cannot do this reliably: its quantiser, asked to leave every node in float (the denylist of
its QuantizationDebugger), still puts a fixed-range QUANTIZE/DEQUANTIZE pair on a sigmoid output that feeds a
concatenation (the corpus' audio-convspec model: 49 dB where float32 gives 133 dB), and its calibration cannot run on a
Keras LSTM. ai-edge-quantizer starts from the float32 flatbuffer and rewrites only the ops its recipe names, so an op
left out really stays float, and nothing quantised gives back the float32 model's numbers.

Two settings differ from ai-edge-quantizer's defaults, for the same numbers as the converter's int8: activation ranges
are the min/max over every calibration sample (its default is a moving average, which narrowed the ranges by half and
cost the box-regressor 15 dB), and where a model output is also read inside the model, its writer and readers stay
float (version 0.10 then points the model output at an int8 copy it inserts, or at the undequantised tensor; the
guard below catches it, and audio-convspec's `note` head has such an output).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
from dataclasses import dataclass

import numpy as np

from edgezoo import _tf
from edgezoo.errors import ConversionError

SIGNATURE = "serving_default"


@dataclass(frozen=True)
class OpSite:
    """One op of the float32 model, as a recipe names it."""

    index: int  # position in the main subgraph
    op: str  # builtin name (CONV_2D)
    scope: str  # ai-edge-quantizer's scope: the op's output tensor names joined with ';', plus a trailing ';'
    output: str  # its first output tensor's name, which carries the TensorFlow layer's name
    weight_elements: int  # elements of its constant inputs (weights and bias): what float costs in size
    pinned_float: bool = False  # writes or reads a model output that the model also reads: always float (see above)


@dataclass(frozen=True)
class Calibration:
    """Activation ranges of the float32 model (ai-edge-quantizer QSVs), and how much they still moved at the end."""

    qsv: dict
    samples: int
    range_moved: dict[str, float]  # tensor -> share of its range gained over the last tenth of the samples
    shapes: dict = None  # input -> the first sample's shape: where a dynamic input is allocated (_allocated_at)

    @property
    def settled(self) -> bool | None:
        if not self.range_moved:
            return None
        return max(self.range_moved.values()) <= RANGE_SETTLED_SHARE


RANGE_SETTLED_SHARE = 0.05  # as calibration/dataset.py's SETTLED_SHARE for the inputs


def known_ops() -> frozenset[str]:
    """The op types a recipe can name (ai-edge-quantizer quantises no other)."""
    from ai_edge_quantizer import qtyping

    return frozenset(name.value for name in qtyping.TFLOperationName)


@contextlib.contextmanager
def _quiet():
    """ai-edge-quantizer logs warnings through absl and draws a tqdm progress bar on sys.stderr."""
    if _tf.is_verbose():
        yield
        return
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with _tf.quiet_native_output(), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def op_sites(float_tflite: bytes) -> tuple[OpSite, ...]:
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(float_tflite)
    subgraph = model.subgraphs[0]
    graph_outputs = set(int(i) for i in subgraph.outputs)
    read_inside = {int(i) for op in subgraph.operators for i in op.inputs if int(i) in graph_outputs}
    codes = model.operatorCodes
    sites = []
    for index, op in enumerate(subgraph.operators):
        code = max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)
        name = fb.TFL_OP_CODE_TO_NAME.get(code)
        name = name.value if name is not None else str(code)
        weights = 0
        for tensor_index in op.inputs:
            if tensor_index < 0:
                continue
            tensor = subgraph.tensors[tensor_index]
            buffer = model.buffers[tensor.buffer]
            if buffer.data is not None and len(buffer.data):
                weights += int(np.prod(tensor.shape)) if tensor.shape is not None else 0
        outputs = [fb.get_tensor_name(subgraph.tensors[i]) for i in op.outputs if i >= 0]
        pinned = any(int(i) in read_inside for i in (*op.inputs, *op.outputs) if i >= 0)
        sites.append(OpSite(index, str(name), fb.get_op_scope(op, subgraph.tensors), outputs[0] if outputs else "", weights, pinned))
    return tuple(sites)


def _samples(calibration, limit: int | None = None) -> list[dict]:
    count = calibration.num_calibration if limit is None else min(limit, calibration.num_calibration)
    return [{name: array[i : i + 1] for name, array in calibration.calibration.items()} for i in range(count)]


def calibrate(float_tflite: bytes, calibration, diagnostics=None) -> Calibration:
    """Min/max of every activation over the whole calibration split, as TFLite's converter takes them. How much the
    ranges still moved is a diagnostic (`diagnostics`: reports/diagnostics.Diagnostics); the ranges themselves are not."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    samples = _samples(calibration)
    recipe = recipe_manager.RecipeManager()
    recipe.add_static_config(".*", "*", activation_num_bits=8, weight_num_bits=8)
    with _quiet():
        calib = calibrator.Calibrator(memoryview(_allocated_at(float_tflite, samples)), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
        head = len(samples) - len(samples) // 10
        calib.calibrate({SIGNATURE: samples[:head]}, recipe)
        before = copy.deepcopy(calib.get_model_qsvs())
        if head < len(samples):
            calib.calibrate({SIGNATURE: samples[head:]}, recipe)
        qsv = calib.get_model_qsvs()
    from edgezoo.diagnostics import DRIFT

    drift = lambda: range_moved(before, qsv) if len(samples) >= 10 else {}  # noqa: E731
    moved = diagnostics.run(DRIFT, drift, {}) if diagnostics is not None else drift()
    return Calibration(qsv, len(samples), moved,
                       {name: array.shape for name, array in samples[0].items()} if samples else None)


def _allocated_at(float_tflite: bytes, samples: list[dict]) -> bytes:
    """The model with its dynamic inputs' default shape set to the first sample's: ai-edge-quantizer's calibrator allocates
    at the default ([1, 1, 1, 3]), which a valid convolution after pooling cannot run ("XNNPack delegate failed to
    reshape"). Only the allocation shape changes; the shape signature stays dynamic and tensor names stay the same."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    details = Interpreter(model_content=float_tflite).get_signature_runner().get_input_details()
    if not samples or all(-1 not in list(d["shape_signature"]) for d in details.values()):
        return float_tflite
    model = flatbuffer_utils.read_model_from_bytearray(float_tflite)
    tensors = model.subgraphs[0].tensors
    for name, detail in details.items():
        if name in samples[0]:
            tensors[detail["index"]].shape = np.array(np.shape(samples[0][name]) if not isinstance(samples[0][name], tuple)
                                                      else samples[0][name], np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def range_moved(before: dict, after: dict) -> dict[str, float]:
    """Each activation's share of its range gained between two calibrations (a diagnostic). Only real-valued ranges:
    a comparison's bool or an index's int32/int64 tensor has a min/max too, but it is never quantised, and numpy
    cannot subtract booleans."""
    moved = {}
    for name, late in after.items():
        early = before.get(name)
        if early is None or "min" not in late or "min" not in early:
            continue
        arrays = [np.asarray(v) for v in (late["min"], late["max"], early["min"], early["max"])]
        if not all(np.issubdtype(a.dtype, np.number) for a in arrays):
            continue
        low, high, low0, high0 = (float(np.min(a)) if i % 2 == 0 else float(np.max(a)) for i, a in enumerate(arrays))
        span = high - low
        moved[name] = (high - high0 + low0 - low) / span if span > 0 else 0.0
    return moved


def _static(activation_bits: int):
    from ai_edge_quantizer import qtyping

    return qtyping.OpQuantizationConfig(
        activation_tensor_config=qtyping.TensorQuantizationConfig(
            num_bits=activation_bits, symmetric=activation_bits == 16, granularity=qtyping.QuantGranularity.TENSORWISE),
        weight_tensor_config=qtyping.TensorQuantizationConfig(
            num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE),
        compute_precision=qtyping.ComputePrecision.INTEGER,
    )


def _exactly(site: OpSite) -> str:
    return "^" + re.escape(site.scope) + "$"


def quantize(float_tflite: bytes, calibration: Calibration, *, float_ops=(), only_ops=None, integer_io: bool = False,
             activation_bits: int = 8) -> bytes:
    """The float32 model with every op ai-edge-quantizer supports in int8 (int16 activations with activation_bits=16),
    except `float_ops` and the pinned ones; with `only_ops`, just those ops. Float input and output unless `integer_io`."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    sites = op_sites(float_tflite)
    q = quantizer.Quantizer(_allocated_at(float_tflite, [calibration.shapes] if calibration.shapes else []))
    # An op's entry names its op type, never "*": the model-output pseudo-op has the same scope as the op writing the
    # output, and a "*" entry added after the I/O entries below would override them for it.
    named = [site for site in sites if site.op in known_ops()]
    if only_ops is None:
        q.update_quantization_recipe(".*", "*", _static(activation_bits))
    else:
        q.update_quantization_recipe(".*", "*", algorithm_key=AlgorithmName.NO_QUANTIZE)
        for site in only_ops:
            if site in named:
                q.update_quantization_recipe(_exactly(site), site.op, _static(activation_bits))
    for site in (*float_ops, *(s for s in sites if s.pinned_float)):  # later entries win for an op they match
        if site in named:
            q.update_quantization_recipe(_exactly(site), site.op, algorithm_key=AlgorithmName.NO_QUANTIZE)
    if not integer_io:
        q.update_quantization_recipe(".*", "INPUT", algorithm_key=AlgorithmName.NO_QUANTIZE)
        q.update_quantization_recipe(".*", "OUTPUT", algorithm_key=AlgorithmName.NO_QUANTIZE)
    return _run(q, calibration.qsv, integer_io, float_tflite)


def weight_only(float_tflite: bytes) -> bytes:
    """int8 per-channel weights, dequantised before each op computes in float: the weights' share of int8's error alone."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(float_tflite, recipe.weight_only_wi8_afp32())
    return _run(q, None, False, float_tflite)


def _run(q, qsv, integer_io: bool, float_tflite: bytes) -> bytes:
    try:
        with _quiet():
            flatbuffer = _inline_buffers(bytes(q.quantize(qsv, enable_progress_report=False).quantized_model))
    except Exception as exc:  # ai-edge-quantizer raises ValueError, KeyError, RuntimeError on graphs it cannot rewrite
        raise ConversionError(f"ai-edge-quantizer could not quantise the model: {type(exc).__name__}: {exc}") from exc
    _check_io(flatbuffer, integer_io, float_tflite)
    return flatbuffer


def _inline_buffers(flatbuffer: bytes) -> bytes:
    """Weights inside the flatbuffer, as TFLite's converter writes them: past 256 KiB of weights, ai-edge-quantizer
    appends them after it (offset buffers, meant for models over 2 GB), which metadata writers and older runtimes refuse."""
    from ai_edge_litert.tools import flatbuffer_utils

    if not any(buffer.offset for buffer in flatbuffer_utils.convert_bytearray_to_object(flatbuffer).buffers):
        return flatbuffer
    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    for buffer in model.buffers:  # as numpy arrays the flatbuffers builder copies them whole, not byte by byte (15 s -> 0.1 s)
        if buffer.data is not None and not isinstance(buffer.data, np.ndarray):
            buffer.data = np.frombuffer(bytes(buffer.data), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check_io(flatbuffer: bytes, integer_io: bool, float_tflite: bytes) -> None:
    """The model loads and, with float I/O, its signature's tensors keep the float model's dtypes: a guard against the
    quantiser rewiring a float tensor to int8 (an integer tensor of the model's own, a uint8 image or token ids, stays as
    it was). With integer I/O an input or output next to an op it cannot quantise stays float, which the runners handle."""
    from ai_edge_litert.interpreter import Interpreter

    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

    try:
        runner = Interpreter(model_content=flatbuffer).get_signature_runner()
        details = {**runner.get_input_details(), **runner.get_output_details()}
        inputs = runner.get_input_details()
        if all(-1 not in d["shape_signature"][1:] for d in inputs.values()):  # one run on zeros, where the shape is known
            runner(**{name: np.zeros([1, *d["shape_signature"][1:]], d["dtype"]) for name, d in inputs.items()})
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"ai-edge-quantizer made a model LiteRT cannot load or run: {exc}") from exc
    original = read_flatbuffer(float_tflite)
    was = {io.name: io.dtype for io in (*original.inputs, *original.outputs)}
    wrong = [f"{name} is {np.dtype(d['dtype']).name}" for name, d in details.items()
             if np.dtype(d["dtype"]) in (np.int8, np.int16, np.uint8) and was.get(name) != np.dtype(d["dtype"]).name]
    if wrong and not integer_io:
        raise ConversionError(f"ai-edge-quantizer changed the model's float inputs/outputs: {', '.join(wrong)}.")



def mixed_artifact(model, request, float_tflite: bytes, calibration: Calibration, float_ops, workdir, activation_bits: int = 8):
    """An Artifact of the float32 model quantised except `float_ops`; its quantisation says what it is: int8 when any op
    computes in int8, float32 when none does (the float end)."""
    import dataclasses

    from edgezoo.formats.tflite import convert as tflite
    from edgezoo.formats.base import Artifact, Quantization
    from edgezoo.formats.tflite.precision import INT8, INT16, op_precisions

    flatbuffer = quantize(float_tflite, calibration, float_ops=float_ops, integer_io=request.integer_io, activation_bits=activation_bits)
    path = workdir / tflite.FILENAME
    path.write_bytes(flatbuffer)
    integer = {op.precision for op in op_precisions(flatbuffer)} & {INT8, INT16}
    made = request.quantization if integer else Quantization.FLOAT32
    return Artifact.of_model(model, dataclasses.replace(request, quantization=made), format=tflite.FORMAT, files=(path,),
                             ops=tflite.ops_used(flatbuffer), details={"quantizer": "ai-edge-quantizer", **tflite.state_details(flatbuffer)})
