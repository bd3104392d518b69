"""Measuring where quantisation loses accuracy, on LiteRT, against the float32 .tflite of the same model.

Two measurements, both on the same held-out inputs:

- per layer (`layer_effects`): the full-int8 model and the float32 model run side by side with every tensor kept; an
  op's own error is the noise-to-signal ratio at its output minus the worst at its inputs (each against the float
  model's tensor of the same name), so an op is not blamed for what reached it. Then each op (up to MAX_SOLO, worst
  own error first) is quantised alone, and the model output's SNR with only that op in int8 is measured: its effect.
- at the source (`trace`): the artifact's loss split into what input/output quantisation alone costs (the float
  model fed inputs rounded to the artifact's input scales, its outputs rounded to the output scales), what int8
  weights alone cost (per-channel int8 weights dequantised into float ops), and the rest, which is the rounding and
  clipping of activations, with its split over layers from the per-layer measurement when that ran.

Error figures are noise-to-signal power ratios (NSR, 10^(-SNR/10)), which add up where errors are independent.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from edgezoo.formats.tflite import selective as tflite_selective
from edgezoo.formats.tflite import dequantize_output, quantize_input, set_inputs
from edgezoo.errors import ConversionError
from edgezoo.formats.tflite import INT8, INT16, layer_name, op_precisions
from edgezoo.validate.metrics import SNR_CAP_DB

MAX_SAMPLES = 64  # held-out inputs the measurements run on
# Layers also quantised alone, worst own error first. An op's own error can understate what it does downstream (a
# square root's error on small values, which a log then magnifies, cost audio-convspec everything at 17 dB local SNR),
# so the fallback ranks by the output's SNR with the op alone in int8; past this many ops, the rest by own error.
MAX_SOLO = 48


def snr_db(nsr: float) -> float:
    if not math.isfinite(nsr):  # NaN or Inf in the outputs (a log of a value rounded to zero): the worst there is
        return -SNR_CAP_DB
    return SNR_CAP_DB if nsr <= 0 else float(np.clip(-10 * math.log10(nsr), -SNR_CAP_DB, SNR_CAP_DB))


def samples_of(inputs: dict[str, np.ndarray], limit: int = MAX_SAMPLES) -> list[dict[str, np.ndarray]]:
    count = min(limit, len(next(iter(inputs.values()))))
    return [{name: array[i : i + 1] for name, array in inputs.items()} for i in range(count)]


# Ops that select from their inputs (NMS): their outputs are a count and padded slots, uninitialised past the count, so
# their noise means nothing; what the measurements compare instead is what they read (a detector's heads), by these names.
SELECTION_OPS = {"TFLite_Detection_PostProcess": ("raw_boxes", "raw_scores")}


class _Model:
    """A .tflite on LiteRT through its signature, optionally keeping every intermediate tensor. A selection op's outputs
    are replaced by its inputs (SELECTION_OPS), read from the kept tensors."""

    def __init__(self, flatbuffer: bytes, keep_tensors: bool = False):
        from ai_edge_litert.interpreter import Interpreter

        probe = Interpreter(model_content=flatbuffer)
        selections = [op for op in probe._get_ops_details() if op["op_name"] in SELECTION_OPS]
        with warnings.catch_warnings():  # "intended for debugging": it is what reading intermediate tensors takes
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            self.interpreter = Interpreter(model_content=flatbuffer, experimental_preserve_all_tensors=keep_tensors or bool(selections))
        # Allocated at the default shape only when every input is static: a dynamic input's default ([1, 1, 1, 3]) may
        # not run at all (a valid 3x3 convolution after pooling: "XNNPack delegate failed to reshape"); it is resized to
        # each sample first, by the function the parity runners' plain interpreters use. (Allocation comes before the
        # signature runner: a live one forbids the plain interpreter's allocate_tensors.)
        self.inputs = probe.get_signature_runner().get_input_details()
        self.dynamic = any(-1 in list(d["shape_signature"]) for d in self.inputs.values())
        self.shapes = None  # the input shapes allocated for, when dynamic
        if not self.dynamic:
            self.interpreter.allocate_tensors()  # before reset_all_variables, which needs allocated state tensors
        self.runner = self.interpreter.get_signature_runner()
        self.order = [next(name for name, d in self.inputs.items() if d["index"] == detail["index"])
                      for detail in self.interpreter.get_input_details()]
        self.outputs = self.runner.get_output_details()
        self.details = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        selected = {i for op in selections for i in op["outputs"]}
        for op in probe._get_ops_details():  # and what is computed from them (integer outputs' QUANTIZE), in graph order
            if selected & set(op["inputs"]):
                selected |= set(op["outputs"])
        self.hidden = {name for name, d in self.outputs.items() if d["index"] in selected}
        self.read = {name: index for op in selections for name, index in zip(SELECTION_OPS[op["op_name"]], op["inputs"])}

    def __call__(self, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: quantize_input(sample[name], d) if np.issubdtype(d["dtype"], np.integer) and sample[name].dtype != d["dtype"]
                else sample[name] for name, d in self.inputs.items()}
        if self.dynamic and self.shapes != {name: array.shape for name, array in feed.items()}:
            self.runner = None  # a live signature runner forbids the plain interpreter's allocate_tensors
            if all(tuple(self.inputs[name]["shape"]) == feed[name].shape for name in self.order):
                self.interpreter.allocate_tensors()  # the sample has the default shape: nothing to resize, still allocated
            set_inputs(self.interpreter, [feed[name] for name in self.order])
            self.runner = self.interpreter.get_signature_runner()
            self.shapes = {name: array.shape for name, array in feed.items()}
        self.interpreter.reset_all_variables()  # each sample on its own: an LSTM's state variables would carry over
        out = self.runner(**feed)
        found = {name: (dequantize_output(value, self.outputs[name]) if np.issubdtype(self.outputs[name]["dtype"], np.integer)
                        else value).astype(np.float64) for name, value in out.items() if name not in self.hidden}
        for name, index in self.read.items():
            found.setdefault(name, self.tensor(index))
        return found

    def tensor(self, index: int) -> np.ndarray:
        detail = self.details[index]
        value = self.interpreter.get_tensor(index)
        if np.issubdtype(value.dtype, np.integer) and detail["quantization"][0]:
            scale, zero = detail["quantization"]
            return (value.astype(np.float64) - zero) * scale
        return value.astype(np.float64)


class _Noise:
    """Signal and noise power summed over samples, per key."""

    def __init__(self):
        self.signal: dict = {}
        self.noise: dict = {}

    def add(self, key, reference: np.ndarray, value: np.ndarray) -> None:
        if reference.shape != value.shape:
            return
        self.signal[key] = self.signal.get(key, 0.0) + float(np.sum(reference**2))
        noise = float(np.sum((value - reference) ** 2))
        self.noise[key] = self.noise.get(key, 0.0) + (noise if math.isfinite(noise) else math.inf)

    def nsr(self, key) -> float | None:
        if key not in self.signal:
            return None
        signal = self.signal[key]
        return self.noise[key] / signal if signal > 0 else (0.0 if self.noise[key] == 0 else 1.0)


def output_nsr(flatbuffer: bytes, samples: list[dict], reference: list[dict], transform_inputs=None, transform_outputs=None) -> dict[str, float]:
    """Each output's NSR against `reference` (the float model's outputs on the same samples)."""
    model, noise = _Model(flatbuffer), _Noise()
    for sample, expected in zip(samples, reference):
        out = model(transform_inputs(sample) if transform_inputs else sample)
        if transform_outputs:
            out = transform_outputs(out)
        for name, value in out.items():
            noise.add(name, expected[name], value)
    return {name: noise.nsr(name) for name in noise.signal}


def float_outputs(float_tflite: bytes, samples: list[dict]) -> list[dict]:
    model = _Model(float_tflite)
    return [model(sample) for sample in samples]


# --- per layer ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEffect:
    layer: str
    op: str
    output: str  # the op's output tensor: where selective quantisation names it
    snr_db: float  # this tensor in the int8 model against the float model's
    added_nsr: float  # the noise this op adds: NSR at its output minus the worst NSR at its inputs
    weight_elements: int = 0
    solo_snr_db: float | None = None  # the model output's worst SNR with only this op in int8

    @property
    def added_db(self) -> float:
        """The op's own error as an SNR (what it would cost with perfect inputs)."""
        return snr_db(self.added_nsr)

    def to_json(self) -> dict:
        return {**asdict(self), "added_snr_db": self.added_db}


def _base(name: str) -> str:
    """A tensor ai-edge-quantizer inserted (`x_quantized`, `x_dequant`) stands for the float model's tensor `x`."""
    while True:
        for suffix in ("_quantized", "_dequant"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        else:
            return name


def layer_effects(float_tflite: bytes, int8_tflite: bytes, samples: list[dict]) -> tuple[LayerEffect, ...]:
    """The own error of every op that computes in int8 (or int16) in `int8_tflite`, worst first."""
    sites = {site.output: site for site in tflite_selective.op_sites(float_tflite)}
    reference, quantized = _Model(float_tflite, keep_tensors=True), _Model(int8_tflite, keep_tensors=True)
    float_index = {d["name"]: d["index"] for d in reference.interpreter.get_tensor_details()}
    details = quantized.interpreter.get_tensor_details()
    names = {d["index"]: d["name"] for d in details}
    produced = {i for op in quantized.interpreter._get_ops_details() for i in op["outputs"]}
    graph_inputs = {d["index"] for d in quantized.interpreter.get_input_details()}
    precisions = {p.output: p for p in op_precisions(int8_tflite)}
    watched = []  # (op details, output index, activation input indices)
    seen = set()
    for op in quantized.interpreter._get_ops_details():
        out = op["outputs"][0] if len(op["outputs"]) else None
        if op["op_name"] == "DELEGATE" or out in seen:  # XNNPACK's delegate nodes repeat the outputs of the ops they took
            continue
        seen.add(out)
        precision = precisions.get(names.get(out, ""))
        if out is None or precision is None or precision.precision not in (INT8, INT16) or names[out] not in float_index:
            continue
        activations = [i for i in op["inputs"] if i >= 0 and (i in produced or i in graph_inputs) and _base(names[i]) in float_index]
        watched.append((op, out, activations))
    tracked = {i for _, out, ins in watched for i in (out, *ins)}
    noise = _Noise()
    for sample in samples:
        reference(sample)
        quantized(sample)
        for index in tracked:
            noise.add(index, reference.tensor(float_index[_base(names[index])]), quantized.tensor(index))
    effects = []
    for op, out, inputs in watched:
        at_output = noise.nsr(out)
        if at_output is None:
            continue
        reaching = max((noise.nsr(i) or 0.0 for i in inputs), default=0.0)
        site = sites.get(names[out])
        effects.append(LayerEffect(layer_name(names[out]), op["op_name"], names[out], snr_db(at_output), max(at_output - reaching, 0.0),
                                   site.weight_elements if site else 0))
    return tuple(sorted(effects, key=lambda e: e.added_nsr, reverse=True))


def with_solo_effects(effects: tuple[LayerEffect, ...], float_tflite: bytes, calibration, samples: list[dict],
                      reference: list[dict], count: int = MAX_SOLO) -> tuple[LayerEffect, ...]:
    """The first `count` layers each quantised alone: the model output's worst SNR with only that op in int8; ranked by
    that effect (worst first), the layers not measured alone after them by their own error."""
    sites = {site.output: site for site in tflite_selective.op_sites(float_tflite)}
    measured = []
    for rank, effect in enumerate(effects):
        if rank < count and effect.output in sites:
            try:
                alone = tflite_selective.quantize(float_tflite, calibration, only_ops=(sites[effect.output],))
            except ConversionError:  # the quantiser cannot make this op alone in int8: ranked by its own error
                alone = None
            if alone is not None:
                worst = max(output_nsr(alone, samples, reference).values(), default=0.0)
                effect = LayerEffect(**{**asdict(effect), "solo_snr_db": snr_db(worst)})
        measured.append(effect)
    return tuple(sorted(measured, key=lambda e: (e.solo_snr_db is None, e.solo_snr_db if e.solo_snr_db is not None else -e.added_nsr)))


# --- at the source ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Boundary:
    """How an artifact rounds one input or output: the scale and zero point of the integer tensor at the model's edge."""

    name: str
    scale: float
    zero_point: int
    dtype: str

    def round(self, array: np.ndarray) -> np.ndarray:
        info = np.iinfo(self.dtype)
        q = np.clip(np.round(array / self.scale + self.zero_point), info.min, info.max)
        return ((q - self.zero_point) * self.scale).astype(array.dtype)


def boundaries(flatbuffer: bytes) -> tuple[dict[str, Boundary], dict[str, Boundary]]:
    """The integer scales at each signature input and output: the tensor itself when it is integer, else the QUANTIZE that
    reads a float input or the DEQUANTIZE that writes a float output."""
    model = _Model(flatbuffer)
    interpreter = model.interpreter
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()

    def edge(detail, ops_at) -> Boundary | None:
        tensor = detail
        if not np.issubdtype(detail["dtype"], np.integer):
            tensor = next((details[i] for i in ops_at(detail["index"]) if np.issubdtype(details[i]["dtype"], np.integer)), None)
        if tensor is None or not tensor["quantization"][0]:
            return None
        scale, zero = tensor["quantization"]
        return Boundary(detail["name"], float(scale), int(zero), np.dtype(tensor["dtype"]).name)

    def after(index):  # the QUANTIZE ops' outputs that read this input
        return [o for op in ops if op["op_name"] == "QUANTIZE" and index in op["inputs"] for o in op["outputs"]]

    def before(index):  # the DEQUANTIZE op's input that writes this output
        return [i for op in ops if op["op_name"] == "DEQUANTIZE" and index in op["outputs"] for i in op["inputs"]]

    inputs = {name: edge(d, after) for name, d in model.inputs.items()}
    outputs = {name: edge(d, before) for name, d in model.outputs.items()}
    return {k: v for k, v in inputs.items() if v}, {k: v for k, v in outputs.items() if v}


@dataclass(frozen=True)
class Trace:
    """An int8 (or int16x8) artifact's error split by source, each measured on the same samples; NSR per output."""

    samples: int
    total: dict[str, float]
    io: dict[str, float]
    weights: dict[str, float]
    boundaries: dict = field(default_factory=dict)  # input/output name -> scale, zero point, dtype
    layers: tuple[LayerEffect, ...] = ()  # per layer, when measured
    calibration_settled: bool | None = None
    range_moved: dict[str, float] = field(default_factory=dict)  # the activations whose range moved most late in calibration

    @property
    def worst_output(self) -> str:
        return max(self.total, key=lambda name: self.total[name])

    def shares(self) -> dict[str, float]:
        """Each source's share of the worst output's noise power; activations are what I/O and weights leave."""
        name = self.worst_output
        total = self.total[name]
        if total <= 0:
            return {"io": 0.0, "weights": 0.0, "activations": 0.0}
        io, weights = min(self.io.get(name, 0.0) / total, 1.0), min(self.weights.get(name, 0.0) / total, 1.0)
        return {"io": io, "weights": weights, "activations": max(0.0, 1.0 - io - weights)}

    def to_json(self) -> dict:
        per_output = {name: {"total_snr_db": snr_db(self.total[name]), "io_snr_db": snr_db(self.io.get(name, 0.0)),
                             "weights_snr_db": snr_db(self.weights[name]) if name in self.weights else None}  # None: not measured
                      for name in self.total}
        return {
            "samples": self.samples,
            "worst_output": self.worst_output,
            "outputs": per_output,
            "shares": self.shares(),
            "boundaries": self.boundaries,
            "calibration_settled": self.calibration_settled,
            "range_moved": self.range_moved,
            "layers_measured": bool(self.layers),
        }


def trace(artifact_flatbuffer: bytes, float_tflite: bytes, samples: list[dict], reference: list[dict], *, weights_nsr=None,
          calibration=None) -> Trace:
    """I/O alone and weights alone against the artifact's total, each measured; per-layer figures are added by the caller."""
    ins, outs = boundaries(artifact_flatbuffer)
    total = output_nsr(artifact_flatbuffer, samples, reference)
    io = output_nsr(
        float_tflite, samples, reference,
        transform_inputs=lambda s: {n: ins[n].round(a) if n in ins else a for n, a in s.items()},
        transform_outputs=lambda o: {n: outs[n].round(a) if n in outs else a for n, a in o.items()},
    )
    weights = weights_nsr if weights_nsr is not None else output_nsr(tflite_selective.weight_only(float_tflite), samples, reference)
    moved = dict(sorted(calibration.range_moved.items(), key=lambda kv: -kv[1])[:3]) if calibration is not None else {}
    return Trace(len(samples), total, io, weights,
                 {b.name: {"scale": b.scale, "zero_point": b.zero_point, "dtype": b.dtype, "kind": kind}
                  for kind, side in (("input", ins), ("output", outs)) for b in side.values()},
                 calibration_settled=calibration.settled if calibration is not None else None, range_moved=moved)
