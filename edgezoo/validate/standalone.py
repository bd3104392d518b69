"""`edgezoo validate SOURCE ARTIFACT`: an artifact made by another tool (a .tflite, an .onnx, a TF.js
model.json) checked against its original like edgezoo's own: the same golden inputs, runtime, metrics,
report.json, report.html and device_check/ bundle, in OUT/<model>/validate-<target>/.

The artifact's format is recognised from its file (ARTIFACT_KINDS); its tensors are matched to the
original's by --input-map/--output-map, by name, by shape, else by values (edgezoo.validate.matching); the
tolerances are the target profile's for the quantisation the artifact turns out to use (or --quantize).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgezoo.converter.base import Artifact, Quantization
from edgezoo.errors import CorruptModelError, EdgezooError, UsageError
from edgezoo.options import ConvertOptions
from edgezoo.validate import matching


@dataclass(frozen=True)
class ValidateOptions:
    target: str | None = None  # profile name or path; None: the usual target of the artifact's format
    quantize: Quantization | None = None  # which of the profile's tolerances apply; None: detected from the artifact
    out_dir: Path = Path("build")
    force: bool = False
    calibration: object = None  # as for convert: the inputs to check on (default: the model's own, else synthetic)
    max_calibration_samples: int = 500
    seed: int = 0
    trust_model: bool = False
    offline: bool = False
    cache_dir: Path | None = None
    mirror: str | None = None
    # (original's name, artifact's tensor) pairs that override the matching; a dict is accepted too
    input_map: tuple[tuple[str, str], ...] = ()
    output_map: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        for name in ("input_map", "output_map"):
            pairs = getattr(self, name)
            object.__setattr__(self, name, tuple(tuple(pair) for pair in (pairs.items() if isinstance(pairs, dict) else pairs)))
        if self.quantize is not None and not isinstance(self.quantize, Quantization):
            object.__setattr__(self, "quantize", ConvertOptions(quantize=self.quantize).quantize)  # same checks and message

    def convert_options(self, target: str) -> ConvertOptions:
        """The loading and data options, shared with convert."""
        return ConvertOptions(
            targets=(target,), out_dir=self.out_dir, quantize=self.quantize, calibration=self.calibration, force=self.force,
            seed=self.seed, max_calibration_samples=self.max_calibration_samples, trust_model=self.trust_model,
            offline=self.offline, cache_dir=self.cache_dir, mirror=self.mirror,
        )


@dataclass(frozen=True)
class ArtifactInfo:
    """What an artifact file says about itself."""

    main: Path
    files: tuple[Path, ...]
    inputs: dict[str, tuple]  # the artifact's tensor names -> shapes (None where dynamic)
    outputs: dict[str, tuple]
    ops: tuple[str, ...]
    quantization: Quantization


@dataclass(frozen=True)
class ArtifactKind:
    format: str
    target: str  # the built-in profile used when none is given
    matches: Callable[[Path], bool]
    inspect: Callable[[Path], ArtifactInfo]


@dataclass(frozen=True)
class ValidationResult:
    target: str
    output_dir: Path
    artifact: Artifact
    parity: object  # ParityReport
    report: dict
    matching: matching.Matching | None = None  # how each tensor was matched

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def to_json(self) -> dict:
        return {"passed": self.passed, "target": self.target, "output_dir": str(self.output_dir), "report": self.report}


# --- reading artifacts ---------------------------------------------------------------------------


def _inspect_tflite(path: Path) -> ArtifactInfo:
    from ai_edge_litert.interpreter import Interpreter

    from edgezoo.converter.tflite import ops_used
    from edgezoo.converter.tflite_flatbuffer import read_flatbuffer
    from edgezoo.validate.runners.litert_probe import probe

    read_flatbuffer(path.read_bytes())  # most damage shows in plain Python (CorruptModelError), without a child process
    probe(path)  # then LiteRT in a child process: a damaged flatbuffer can crash the process that opens it
    try:
        interpreter = Interpreter(model_path=str(path))
        runner = interpreter.get_signature_runner()
        shapes = lambda details: {name: tuple(None if d < 0 else int(d) for d in detail["shape_signature"]) for name, detail in details.items()}  # noqa: E731
        ops = ops_used(path.read_bytes())
        return ArtifactInfo(
            main=path,
            files=(path,),
            inputs=shapes(runner.get_input_details()),
            outputs=shapes(runner.get_output_details()),
            ops=ops,
            quantization=_tflite_quantization(interpreter.get_tensor_details(), runner.get_input_details(), ops),
        )
    except (ValueError, RuntimeError, TypeError, IndexError) as exc:  # LiteRT's answers to a damaged file
        raise CorruptModelError(f"{path} is not a .tflite model LiteRT can open with a signature: {exc}") from exc


def _tflite_quantization(tensors: list[dict], inputs: dict, ops: tuple[str, ...]) -> Quantization:
    """The quantisation a converted model shows: integer activations, float16 weights, int8 weights alone."""
    dtypes = {np.dtype(t["dtype"]).name for t in tensors}
    quantized_int16 = any(np.dtype(t["dtype"]) == np.int16 and t["quantization"][0] for t in tensors)
    if quantized_int16:
        return Quantization.INT16X8
    if "QUANTIZE" in ops or any(np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0] for d in inputs.values()):
        return Quantization.INT8
    if "float16" in dtypes:
        return Quantization.FLOAT16
    if "int8" in dtypes:
        return Quantization.DYNAMIC_INT8
    return Quantization.FLOAT32


def _inspect_onnx(path: Path) -> ArtifactInfo:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx' own errors
        raise CorruptModelError(f"{path} is not an ONNX model: {exc}") from exc
    try:  # a damaged file can hold names that are not UTF-8 (protobuf hands them over as bytes)
        graph = proto.graph
        initializers = {t.name for t in graph.initializer}
        dims = lambda value: tuple(d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim)  # noqa: E731
        ops = tuple(sorted({node.op_type for node in graph.node}))
        integer_ops = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}
        if set(ops) & integer_ops:
            quantization = Quantization.DYNAMIC_INT8
        elif set(ops) & {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}:
            quantization = Quantization.INT8
        elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer):
            quantization = Quantization.FLOAT16
        else:
            quantization = Quantization.FLOAT32
        inputs = {value.name: dims(value) for value in graph.input if value.name not in initializers}
        outputs = {value.name: dims(value) for value in graph.output}
        if not all(isinstance(name, str) for name in (*ops, *inputs, *outputs)):
            raise ValueError("op or tensor names that are not UTF-8 text")
        return ArtifactInfo(main=path, files=(path,), inputs=inputs, outputs=outputs, ops=ops, quantization=quantization)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptModelError(f"{path} is a damaged ONNX model: {type(exc).__name__}: {exc}") from exc


def _inspect_tfjs(path: Path) -> ArtifactInfo:
    """model.json read as untrusted JSON: any shape of it ends in CorruptModelError; weight paths must stay in its folder."""
    from edgezoo.converter.tfjs import graph_nodes
    from edgezoo.zoo.safety import check_json_size, contained_file

    try:
        check_json_size(path)
        model_json = json.loads(path.read_text())
        manifest = model_json["weightsManifest"]
        signature = model_json.get("signature") or {}
        if not signature.get("inputs") or not signature.get("outputs"):
            raise CorruptModelError(f"{path} has no signature; convert the model with tensorflowjs_converter from a SavedModel signature.")
        dims = lambda spec: tuple(None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in spec.get("tensorShape", {}).get("dim", []))  # noqa: E731
        shards = tuple(contained_file(path.parent, p, f"{path} (a weight file of its weightsManifest)") for group in manifest for p in group["paths"])
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise CorruptModelError(f"{path} names weight files that are not there: {', '.join(missing)}.")
        stored = {w.get("quantization", {}).get("dtype") for group in manifest for w in group["weights"]}
        quantization = Quantization.FLOAT16 if "float16" in stored else Quantization.DYNAMIC_INT8 if stored & {"uint8", "uint16"} else Quantization.FLOAT32
        return ArtifactInfo(
            main=path,
            files=(path, *shards),
            inputs={str(name): dims(spec) for name, spec in signature["inputs"].items()},
            outputs={str(name): dims(spec) for name, spec in signature["outputs"].items()},
            ops=tuple(sorted({str(op) for _, op in graph_nodes(model_json)} - {"Const", "Placeholder"})),
            quantization=quantization,
        )
    except EdgezooError:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:  # any shape of JSON
        raise CorruptModelError(f"{path} is not a TF.js graph model.json: {type(exc).__name__}: {exc}") from exc


ARTIFACT_KINDS = (
    ArtifactKind("tflite", "phone", lambda p: p.suffix == ".tflite", _inspect_tflite),
    ArtifactKind("onnx", "onnx", lambda p: p.suffix == ".onnx", _inspect_onnx),
    ArtifactKind("tfjs", "browser", lambda p: p.suffix == ".json", _inspect_tfjs),
)


def artifact_kind(path: Path) -> ArtifactKind:
    for kind in ARTIFACT_KINDS:
        if kind.matches(path):
            return kind
    raise UsageError(f"'{path}' is not an artifact edgezoo can validate: give a .tflite, an .onnx, or a TF.js model.json.")


def _artifact_path(text: str) -> Path:
    path = Path(text)
    if path.is_dir() and (path / "model.json").exists():
        path = path / "model.json"  # a TF.js model folder
    if not path.is_file():
        raise UsageError(f"no artifact at '{text}': the file does not exist.")
    return path


# --- the whole check -----------------------------------------------------------------------------


def validate_artifact(source, artifact_path: str | Path, options: ValidateOptions | None = None, feedback=None) -> ValidationResult:
    from edgezoo.output import OutputTree
    from edgezoo.pipeline import Feedback, prepare_data, write_evidence
    from edgezoo.targets import resolve_profile
    from edgezoo.validate.device_check import GoldenSet
    from edgezoo.validate.runners.tensorflow import run_reference
    from edgezoo.zoo import load

    options = options or ValidateOptions()
    feedback = feedback or Feedback()
    path = _artifact_path(str(artifact_path))
    kind = artifact_kind(path)
    profile = resolve_profile(options.target or kind.target)
    if profile.format != kind.format:
        raise UsageError(f"target '{profile.name}' takes {profile.format} models, but {path} is {kind.format}; pick a {kind.format} target.")
    info = kind.inspect(path)
    quantization = options.quantize or info.quantization
    tolerance = profile.tolerance_for(quantization)
    convert_options = options.convert_options(profile.name)
    with feedback.step(f"loading {source if isinstance(source, str) else source.name}"):
        model = load(source, convert_options.load_options(feedback.progress)) if isinstance(source, str) else source
    inputs = matching.plan_inputs({s.name: s.shape for s in model.inputs}, info.inputs, options.input_map)
    outputs = matching.plan_outputs({s.name: s.shape for s in model.outputs}, info.outputs, options.output_map)
    label = f"validate-{profile.name}"
    tree = OutputTree(convert_options.out_dir, model.name, options.force)
    for note in tree.check([label]):
        feedback.warn(note)
    try:
        data = prepare_data(model, convert_options)
        for message in data.warnings:
            feedback.warn(message)
        with feedback.step(f"running the original on {data.num_heldout} held-out inputs"):
            reference = run_reference(model, data.heldout)
        with tree.staging(label) as staging:
            artifact = _copy_artifact(info, kind, quantization, staging)
            by_values = " (matching tensors by values)" if inputs.groups or outputs.groups else ""
            with feedback.step(f"checking {path.name} on {profile.runtime}{by_values}"):
                parity, matched = _check(artifact, profile.runtime, data.heldout, reference, inputs, outputs, model, tolerance)
            for message in matched.warnings():
                feedback.warn(message)
            golden = GoldenSet(model.name, profile.name, tolerance, model.is_classifier, data.heldout, reference,
                               matched.tensors("inputs"), matched.tensors("outputs"))
            validated = {"artifact": str(path.resolve()), "quantization_detected": info.quantization.value,
                         "inputs": matched.tensors("inputs"), "outputs": matched.tensors("outputs"),
                         "matching": matched.to_json(), "matching_uncertain": matched.uncertain}
            report = write_evidence(staging, model=model, profile=profile, artifact=artifact, parity=parity, data=data, golden=golden,
                                    extra={"validated": validated})
            final = tree.publish(staging, label)
    finally:
        tree.discard_empty()
    return ValidationResult(profile.name, final, artifact.relocated(staging, final), parity, report, matched)


def _copy_artifact(info: ArtifactInfo, kind: ArtifactKind, quantization: Quantization, staging: Path) -> Artifact:
    """The artifact's files in the output folder, laid out as convert lays them out (TF.js in tfjs_model/)."""
    folder = staging / "tfjs_model" if kind.format == "tfjs" else staging
    folder.mkdir(exist_ok=True)
    copies = []
    for file in info.files:
        copy = folder / file.relative_to(info.main.parent)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, copy)
        copies.append(copy)
    return Artifact(
        format=kind.format,
        path=copies[0],
        files=tuple(copies),
        quantization=quantization,
        input_names=tuple(info.inputs),
        output_names=tuple(info.outputs),
        ops=info.ops,
        details={"made_by": "another tool", "input_shapes": {name: list(shape) for name, shape in info.inputs.items()}},
    )


def _check(artifact, runtime, heldout, reference, inputs, outputs, model, tolerance):
    """Run under the artifact's own tensor names (as often as matching by values needs); compare and report under the original's."""
    from edgezoo._tf import quiet_native_output
    from edgezoo.errors import RuntimeFailure
    from edgezoo.validate import ParityReport, compare_outputs
    from edgezoo.validate.runners import runner_for

    runner = runner_for(runtime)

    def run(tensors: dict[str, str]) -> dict[str, np.ndarray]:
        with quiet_native_output():  # runtimes print INFO lines (delegates) straight to stderr
            return runner.run(artifact, {tensor: heldout[name] for name, tensor in tensors.items()})

    try:
        matched, produced = matching.resolve(inputs, outputs, reference, run)
    except RuntimeFailure as exc:
        return ParityReport(runtime, len(next(iter(heldout.values()))), (), tolerance, error=str(exc)), matching.undecided(inputs, outputs)
    candidate = {name: produced[m.tensor] for name, m in matched.outputs.items() if m.tensor in produced}
    return compare_outputs(reference, candidate, classifier=model.is_classifier, tolerance=tolerance, runtime=runtime), matched
