"""`edgezoo validate SOURCE ARTIFACT`: an artifact made by another tool (a .tflite, an .onnx, a TF.js
model.json) checked against its original like edgezoo's own: the same golden inputs, runtime, metrics,
report.json, report.html and device_check/ bundle, in OUT/<model>/validate-<target>/.

The artifact's format is recognised from its file (ARTIFACT_KINDS); its tensors are matched to the
original's by --input-map/--output-map, by name, by shape, else by values (edgezoo.validate.matching); the
tolerances are the target profile's for the quantisation the artifact turns out to use (or --quantize).

A model whose task judges parity its own way (a detector: edgezoo/tasks/) is checked as `convert` checks it: the
task's reference for the target (for a .tflite detector, the original's heads through the numpy twin of
TFLite_Detection_PostProcess), the task's parity (matched boxes), and its report sections. Its inputs are matched
as above; its outputs by name only (NMS-selected outputs cannot be matched by values), extra outputs ignored.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgezoo.formats.inspect import ARTIFACT_KINDS, ArtifactInfo, ArtifactKind, artifact_kind  # noqa: F401 (validate's readers)
from edgezoo.formats.inspect import artifact_path as _artifact_path
from edgezoo.formats.base import Artifact, Quantization
from edgezoo.errors import UsageError
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


# --- the whole check -----------------------------------------------------------------------------


def validate_artifact(source, artifact_path: str | Path, options: ValidateOptions | None = None, feedback=None) -> ValidationResult:
    from edgezoo.output import OutputTree
    from edgezoo.pipeline import prepare_data
    from edgezoo.target_run import Feedback, write_evidence
    from edgezoo.targets import resolve_profile
    from edgezoo.tasks import has_own_parity, task_for
    from edgezoo.validate.device_check import GoldenSet
    from edgezoo.zoo import load

    options = options or ValidateOptions()
    feedback = feedback or Feedback()
    path = _artifact_path(str(artifact_path))
    kind = artifact_kind(path)
    profile = resolve_profile(options.target or kind.target)
    if profile.format != kind.format:
        raise UsageError(f"target '{profile.name}' takes {profile.format} models, but {path} is {kind.format}; pick a {kind.format} target.")
    info = kind.inspect(path)
    if kind.format == "tflite":  # LiteRT runs it below: open it in a child first, a damaged flatbuffer can crash the process
        from edgezoo.formats.tflite import probe

        probe(path)
    quantization = options.quantize or info.quantization
    convert_options = options.convert_options(profile.name)
    with feedback.step(f"loading {source if isinstance(source, str) else source.name}"):
        model = load(source, convert_options.load_options(feedback.progress)) if isinstance(source, str) else source
    task, own_parity = task_for(model), has_own_parity(model)
    tolerance = profile.tolerance_for(quantization)
    if not own_parity:
        tolerance = tolerance.without_detection_limits()  # judged tensor by tensor
    inputs = matching.plan_inputs({s.name: s.shape for s in model.inputs}, info.inputs, options.input_map)
    if own_parity and options.output_map:
        raise UsageError(f"--output-map does not apply to a {model.task} model: its outputs are matched by name "
                         f"(the artifact's: {', '.join(info.outputs)}). Export the artifact with the original signature's names.")
    outputs = None if own_parity else matching.plan_outputs({s.name: s.shape for s in model.outputs}, info.outputs, options.output_map)
    label = f"validate-{profile.name}"
    tree = OutputTree(convert_options.out_dir, model.name, options.force)
    for note in tree.check([label]):
        feedback.warn(note)
    try:
        data = prepare_data(model, convert_options)
        for message in data.warnings:
            feedback.warn(message)
        with feedback.step(f"running the original on {data.num_heldout} held-out inputs"):
            reference = task.run_reference(model, data.heldout)
        reference = task.target_reference(model, reference, profile)  # a detector's: what this format's post-processing gives
        with tree.staging(label) as staging:
            artifact = _copy_artifact(info, kind, quantization, staging)
            by_values = " (matching tensors by values)" if inputs.groups or (outputs and outputs.groups) else ""
            with feedback.step(f"checking {path.name} on {profile.runtime}{by_values}"):
                if own_parity:
                    parity, matched = _check_task(task, artifact, profile, data.heldout, reference, inputs, info, model, tolerance)
                else:
                    parity, matched = _check(artifact, profile.runtime, data.heldout, reference, inputs, outputs, model, tolerance)
            for message in matched.warnings():
                feedback.warn(message)
            golden = GoldenSet(model.name, profile.name, tolerance, model.is_classifier, data.heldout,
                               {name: reference[name] for name in matched.outputs} if own_parity else reference,
                               matched.tensors("inputs"), matched.tensors("outputs"), detection=task.golden_settings(model))
            validated = {"artifact": str(path.resolve()), "quantization_detected": info.quantization.value,
                         "inputs": matched.tensors("inputs"), "outputs": matched.tensors("outputs"),
                         "matching": matched.to_json(), "matching_uncertain": matched.uncertain}
            report = write_evidence(staging, model=model, profile=profile, artifact=artifact, parity=parity, data=data, golden=golden,
                                    extra={"validated": validated, **task.report_sections(parity, model, data)})
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
    from edgezoo.formats import runner_for

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


def _check_task(task, artifact, profile, heldout, reference, inputs, info, model, tolerance):
    """A task's own parity (a detector's matched boxes) on the artifact fed under its own input names; its outputs are
    the task's by name (the artifact's order does not matter, outputs the reference lacks are not judged)."""
    if inputs.groups:
        raise UsageError(f"the artifact's inputs ({', '.join(info.inputs)}) cannot be told apart by names or shapes; a "
                         f"{model.task} model's inputs are not matched by values: give --input-map NAME=TENSOR.")
    fed = {m.tensor: heldout[name] for name, m in inputs.decided.items()}
    parity = task.check_parity(artifact, model, profile, fed, reference, tolerance)
    outputs = {name: matching.Match(name, matching.BY_NAME) for name in reference if name in info.outputs}
    return parity, matching.Matching(dict(inputs.decided), outputs)
