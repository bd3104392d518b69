"""Where full-integer quantisation hurts, and getting it back: per-layer int8 error, layers kept in float,
and the automatic float fallback.

The per-layer error comes from TFLite's QuantizationDebugger: its debug model runs every quantised op next
to its float twin on the same inputs, so each figure is that layer's own error, not the sum of the layers
before it. Layers are ranked by relative RMSE (the error's RMS over the float output's RMS). Layers named
with --keep-float, and the worst layers during the fallback, stay in float through the debugger's
selective quantisation (its denylisted nodes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.converter.base import ConversionRequest, Quantization
from edgezoo.errors import TargetConstraintError, UsageError

MAX_DEBUG_SAMPLES = 64  # calibration samples the per-layer measurement runs on
NEGLIGIBLE_ERROR = 1e-4  # relative RMSE below which moving a layer to float cannot help (pooling, reshapes)
NUMERIC_VERIFY = "NumericVerify"


@dataclass(frozen=True)
class LayerError:
    layer: str  # readable name, e.g. digits_cnn/conv2
    node: str  # the TFLite tensor the layer writes: what selective quantisation denylists
    op: str
    relative_rmse: float
    rmse: float
    max_abs_error: float
    rmse_over_scale: float  # about 0.29 is plain rounding; far above means the range is poorly used
    output_gain: float | None = None  # how much the model output's relative error drops with this layer alone in float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def layer_name(node: str) -> str:
    """`digits_cnn/conv2/Relu;digits_cnn/conv2/BiasAdd;...` -> `digits_cnn/conv2`."""
    parts = [p for p in node.split(";")[0].split("/") if not p.endswith("PartitionedCall")]
    return "/".join(parts[:-1]) or node


def _names_layer(wanted: str, node: str) -> bool:
    """Whether a user's layer name means this node: the full name, one fused part, a path prefix, or one path component."""
    for part in node.split(";"):
        if wanted in (node, part) or part.startswith(wanted + "/") or wanted in part.split("/"):
            return True
    return False


def resolve_layers(wanted: tuple[str, ...], nodes: tuple[str, ...]) -> tuple[str, ...]:
    """The quantised model's nodes that the user's layer names mean; an unknown name is an error listing the known ones."""
    found: list[str] = []
    for name in wanted:
        matches = [node for node in nodes if _names_layer(name, node)]
        if not matches:
            known = ", ".join(dict.fromkeys(layer_name(node) for node in nodes))
            raise UsageError(f"--keep-float {name}: the quantised model has no such layer. Its layers: {known}.")
        found.extend(node for node in matches if node not in found)
    return tuple(found)


@contextlib.contextmanager
def _quiet_stdout():
    """TFLite's quantiser prints its settings straight to file descriptor 1, which would corrupt --json output."""
    if _tf.is_verbose():
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _debug_dataset(request: ConversionRequest, max_samples: int):
    calibration = request.calibration
    names = sorted(calibration.calibration)  # TFLite orders inputs like the signature: sorted by name
    count = min(calibration.num_calibration, max_samples)
    return lambda: ([calibration.calibration[name][i : i + 1] for name in names] for i in range(count))


def _debugger(request: ConversionRequest, model, options=None):
    from edgezoo.converter import tflite

    tf = _tf.tf()
    converter = tflite.build_converter(model, dataclasses.replace(request, keep_float=()))
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_debug_dataset(request, MAX_DEBUG_SAMPLES), debug_options=options
    )


def selective_quantize(model, request: ConversionRequest) -> bytes:
    """An int8 model with `request.keep_float` nodes left in float (int8 input/output too when `integer_io`)."""
    tf = _tf.tf()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(request.keep_float), fully_quantize=request.integer_io)
    with _quiet_stdout():
        return _debugger(request, model, options).get_nondebug_quantized_model()


def _op_outputs(interpreter) -> dict[int, str]:
    """Tensor index -> the op that writes it."""
    return {index: op["op_name"] for op in interpreter._get_ops_details() for index in op["outputs"]}


def layer_errors(model, request: ConversionRequest) -> tuple[tuple[LayerError, ...], tuple[str, ...]]:
    """Each quantised layer's own int8 error, worst first, and every node name of the quantised model."""
    tf = _tf.tf()
    dataset = _debug_dataset(request, MAX_DEBUG_SAMPLES)
    with _tf.quiet_native_output(), _quiet_stdout():
        debugger = _debugger(request, model)
        debug_model = debugger.get_debug_quantized_model()
        # A second debugger on the debug model keeps every tensor, so each layer's float output can be read too.
        measured = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model,
            debug_dataset=dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={
                "error_rms": lambda f, q, scale, zero: float(np.sqrt(np.mean(((q.astype(np.float64) - zero) * scale - f) ** 2))),
                "float_rms": lambda f, q, scale, zero: float(np.sqrt(np.mean(f.astype(np.float64) ** 2))),
                "scale": lambda f, q, scale, zero: float(scale),
            }),
        )
        measured.run()
    # Denylisting matches the names in the calibrated float model, before quantize ops were added.
    calibrated = tf.lite.Interpreter(model_content=debugger.calibrated_model)
    written = _op_outputs(calibrated)
    nodes = tuple(d["name"] for d in calibrated.get_tensor_details() if d["index"] in written)
    interpreter = tf.lite.Interpreter(model_content=debug_model)
    details = interpreter.get_tensor_details()
    writers = _op_outputs(interpreter)
    layers = []
    for op in interpreter._get_ops_details():
        if op["op_name"] != NUMERIC_VERIFY:
            continue
        quantized_name, float_name = details[op["inputs"][0]]["name"], details[op["inputs"][1]]["name"]
        stats = measured.layer_statistics[details[op["outputs"][0]]["name"]]
        # The debug model renames the quantised twin with a trailing "1"; the float twin sometimes gets another name.
        node = next((name for name in (quantized_name[:-1], float_name) if name in nodes), quantized_name)
        float_rms, error_rms = float(stats["float_rms"]), float(stats["error_rms"])
        layers.append(LayerError(
            layer=layer_name(node),
            node=node,
            op=writers.get(op["inputs"][0], "?"),
            relative_rmse=error_rms / float_rms if float_rms > 0 else 0.0,
            rmse=error_rms,
            max_abs_error=float(stats["max_abs_error"]),
            rmse_over_scale=error_rms / float(stats["scale"]) if stats["scale"] else 0.0,
        ))
    worth_trying = [layer.node for layer in layers if layer.relative_rmse > NEGLIGIBLE_ERROR]
    with _tf.quiet_native_output(), _quiet_stdout():
        gains = _output_gains(debugger, worth_trying, list(dataset()))
    layers = [dataclasses.replace(layer, output_gain=gains.get(layer.node)) for layer in layers]
    return tuple(sorted(layers, key=lambda e: e.relative_rmse, reverse=True)), nodes


def _run_tflite(content: bytes, samples: list) -> list[np.ndarray]:
    """A TFLite model's outputs (in its own order) on samples given as lists of inputs (in its input order)."""
    from edgezoo.converter.tflite import set_inputs

    tf = _tf.tf()
    interpreter = tf.lite.Interpreter(model_content=content)
    interpreter.allocate_tensors()
    outputs = []
    for sample in samples:
        set_inputs(interpreter, sample)  # resizes dynamic dimensions (height, width...) to the sample's
        interpreter.invoke()
        outputs.append([interpreter.get_tensor(detail["index"]).astype(np.float64) for detail in interpreter.get_output_details()])
    return [np.concatenate(parts) for parts in zip(*outputs)]


def _relative_output_error(content: bytes, samples: list, reference: list[np.ndarray]) -> float:
    outputs = _run_tflite(content, samples)
    return float(np.mean([np.sqrt(np.mean((o - r) ** 2)) / max(float(np.sqrt(np.mean(r**2))), 1e-12) for o, r in zip(outputs, reference)]))


def _output_gains(debugger, nodes: list[str], samples: list) -> dict[str, float]:
    """Per node: the drop of the output's relative error when that node alone stays float (one calibration, many quantisations).

    A layer's own error misses what it does downstream (a softmax's fixed int8 output scale, say), so the fallback
    moves layers in the order of this gain.
    """
    tf = _tf.tf()
    reference = _run_tflite(debugger.calibrated_model, samples)
    baseline = _relative_output_error(debugger.get_nondebug_quantized_model(), samples, reference)
    gains = {}
    for node in nodes:
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[node])
        gains[node] = baseline - _relative_output_error(debugger.get_nondebug_quantized_model(), samples, reference)
    return gains


def float_nodes(artifact, nodes: tuple[str, ...]) -> tuple[str, ...]:
    """Which of `nodes` are really float in the artifact (some ops, such as pooling, always follow their input's type)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact.path))
    writers = _op_outputs(interpreter)
    computed_in_float = {d["name"] for d in interpreter.get_tensor_details()
                         if d["dtype"] == np.float32 and writers.get(d["index"]) not in (None, "DEQUANTIZE")}
    return tuple(node for node in nodes if node in computed_in_float)


# --- the automatic fallback -----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedConversion:
    artifact: object
    parity: object
    report: dict  # sections for the target's report.json


def _step_counts(candidates: int) -> list[int]:
    """How many of the worst layers each fallback step keeps in float: one at a time, then growing by half."""
    counts, count = [], 1
    while count < candidates:
        counts.append(count)
        count = count + 1 if count < 4 else count * 3 // 2
    return counts + [candidates] if candidates else []


def _attempt_json(nodes, artifact, parity) -> dict:
    return {
        "float_layers": [layer_name(node) for node in float_nodes(artifact, nodes)],
        "passed": parity.passed,
        "size_bytes": artifact.size_bytes,
        "parity": parity.summary(),
        "metrics": {output.name: output.metrics for output in parity.outputs},
    }


def supports_fallback(converter, request: ConversionRequest) -> bool:
    return request.quantization is Quantization.INT8 and getattr(converter, "SELECTIVE_QUANTIZATION", False)


def convert_checked(converter, model, request: ConversionRequest, workdir, check: Callable, *, profile, keep_float: tuple[str, ...],
                    auto_fallback: bool, feedback, finish: Callable = lambda artifact, folder: artifact) -> CheckedConversion:
    """Convert, check parity, and for int8 move the worst layers to float a step at a time until parity passes.

    `check(artifact)` returns its ParityReport; `finish(artifact, folder)` runs the target's checks on a fresh artifact.
    """
    convert = lambda request, folder: finish(converter.convert(model, request, folder), folder)  # noqa: E731
    converting = f"{profile.name}: converting to {profile.format} ({request.quantization.value})"
    checking = f"{profile.name}: checking parity on {profile.runtime}"
    allowed = getattr(profile, "allow_float_fallback", True)
    if not supports_fallback(converter, request):
        if keep_float:
            raise UsageError(
                f"--keep-float applies to full-integer int8 TFLite models; target '{profile.name}' converts to "
                f"{profile.format} ({request.quantization.value}). Use --quantize int8 with a TFLite target."
            )
        with feedback.step(converting):
            artifact = convert(request, workdir)
        with feedback.step(checking):
            return CheckedConversion(artifact, check(artifact), {})
    if keep_float and not allowed:
        raise TargetConstraintError(
            f"target '{profile.name}' runs integer ops only, so no layer can stay in float; drop --keep-float {' '.join(keep_float)}."
        )
    with feedback.step(f"{profile.name}: measuring each layer's int8 error (QuantizationDebugger)"):
        layers, nodes = layer_errors(model, request)
    kept = resolve_layers(keep_float, nodes)
    request = dataclasses.replace(request, keep_float=kept)
    with feedback.step(converting + (f", {len(kept)} node(s) kept in float" if kept else "")):
        artifact = convert(request, workdir)
    with feedback.step(checking):
        parity = check(artifact)
    fallback = {"auto": auto_fallback, "allowed_by_target": allowed, "requested_keep_float": list(keep_float),
                "kept_float": [layer_name(node) for node in float_nodes(artifact, kept)], "attempts": []}
    debug = {"tool": "tf.lite.experimental.QuantizationDebugger", "samples": min(request.calibration.num_calibration, MAX_DEBUG_SAMPLES),
             "ranked_by": "relative_rmse: RMS of a layer's int8 error over the RMS of its float output, each layer fed the same inputs",
             "layers": [layer.to_json() for layer in layers]}
    if parity.passed:
        outcome, message = "not needed", "int8 parity passed without moving layers to float."
    elif not auto_fallback:
        outcome, message = "disabled", f"int8 parity missed the tolerance ({parity.summary()}); automatic float fallback is off."
    elif not allowed:
        outcome = "forbidden by target"
        message = (f"int8 parity missed the tolerance ({parity.summary()}), and target '{profile.name}' runs integer ops only, "
                   "so no layer can fall back to float. Give more representative calibration data, or loosen the tolerance.")
    else:
        artifact, parity, outcome, message = _fall_back(convert, request, workdir, check, layers, fallback, profile, artifact, parity, feedback)
    fallback.update(outcome=outcome, message=message)
    if outcome in ("forbidden by target", "failed"):
        feedback.warn(message)
    return CheckedConversion(artifact, parity, {"quantization_debug": debug, "float_fallback": fallback})


def _fall_back(convert, request, workdir, check, layers, fallback: dict, profile, artifact, parity, feedback):
    """Keep the worst layers in float, a step at a time; on success the passing artifact replaces the int8 one in workdir."""
    ordered = sorted(layers, key=lambda layer: (layer.output_gain or 0.0, layer.relative_rmse), reverse=True)
    candidates = [layer.node for layer in ordered if layer.node not in request.keep_float and layer.relative_rmse > NEGLIGIBLE_ERROR]
    last = None
    for count in _step_counts(len(candidates)):
        nodes = request.keep_float + tuple(candidates[:count])
        attempt_dir = scratch_dir("fallback-")
        with feedback.step(f"{profile.name}: int8 parity missed; trying with the {count} worst layer(s) in float"):
            attempt = convert(dataclasses.replace(request, keep_float=nodes), attempt_dir)
            attempt_parity = check(attempt)
        fallback["attempts"].append(_attempt_json(nodes, attempt, attempt_parity))
        last = attempt_parity
        if attempt_parity.passed:
            for path in attempt.files:
                shutil.copy2(path, workdir / path.relative_to(attempt_dir))
            fallback["kept_float"] = fallback["attempts"][-1]["float_layers"]
            ops = {layer.layer: layer.op for layer in layers}
            moved = ", ".join(f"{name} ({ops.get(name, '?')})" for name in fallback["kept_float"])
            return (attempt.relocated(attempt_dir, workdir), attempt_parity, "passed",
                    f"int8 parity passed after moving {count} layer(s) to float ({moved}); the other layers stay int8.")
    if last is None:
        return artifact, parity, "failed", f"int8 parity missed the tolerance ({parity.summary()}), and no layer has an int8 error worth moving to float."
    return (artifact, parity, "failed",
            f"int8 parity misses the tolerance even with all {len(candidates)} layer(s) that lose accuracy in float: still {last.summary()}. "
            "The int8 input/output or the tolerance itself is the limit; the artifact kept is plain int8.")


def summary_lines(report: dict) -> list[str]:
    """Lines for the CLI from a target report's quantisation sections."""
    lines = []
    debug = report.get("quantization_debug")
    if debug and debug.get("layers"):
        worst = ", ".join(f"{layer['layer']} {100 * layer['relative_rmse']:.2f}%" for layer in debug["layers"][:3])
        lines.append(f"  worst int8 layers (relative error): {worst}")
    fallback = report.get("float_fallback")
    if fallback and fallback.get("outcome") != "not needed":
        lines.append(f"  float fallback: {fallback['message']}")
    elif fallback and fallback.get("kept_float"):
        lines.append(f"  kept in float: {', '.join(fallback['kept_float'])}")
    return lines
