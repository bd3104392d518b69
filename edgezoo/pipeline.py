"""The whole path for one source: load, prepare the data and the original's reference once, then run its targets
(edgezoo/target_run.py: in this process for one target, else as jobs in worker processes, edgezoo/jobs/) and write
the run summary. This module is above the jobs; the work of one target is below them."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgezoo import calibration as calibration_data
from edgezoo.options import ConvertOptions
from edgezoo.output import OutputTree
from edgezoo.reports.json_report import golden_digest, run_summary, write_json
from edgezoo.reports.summary_page import write_summary_html
from edgezoo.target_run import Feedback, TargetResult, disk_full, try_target
from edgezoo.targets import TargetProfile, builtin_profiles, resolve_profile, static_shape
from edgezoo.tasks import task_for
from edgezoo.zoo import LoadedModel, load
from edgezoo.zoo.reference import dynamic_size_that_runs


@dataclass(frozen=True)
class ConversionResult:
    model: LoadedModel
    targets: tuple[TargetResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.targets)

    @property
    def exit_code(self) -> int:
        """The most severe of the targets' exit codes (the highest: 4 tool or runtime failed > 3 refused > 2 bad input > 1 parity)."""
        return max((t.exit_code for t in self.targets), default=0)

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "exit_code": self.exit_code,
            "model": self.model.to_json(),
            "targets": [
                {"target": t.target, "output_dir": str(t.output_dir) if t.output_dir else None, "passed": t.passed,
                 "status": t.status, "exit_code": t.exit_code, "error": t.failure.message if t.failure else None, "report": t.report}
                for t in self.targets
            ],
        }


def resolve_targets(names: tuple[str, ...]) -> list[TargetProfile]:
    expanded = list(builtin_profiles()) if "all" in names else list(names)
    return [resolve_profile(name) for name in dict.fromkeys(expanded)]


def prepare_data(model: LoadedModel, options: ConvertOptions, shapes: dict | None = None) -> calibration_data.CalibrationSet:
    """The user's data, the model's own, or random inputs (of `shapes` where the run fixes input shapes)."""
    if options.calibration is not None:
        return calibration_data.load_calibration(options.calibration, model, options.calibration_settings())
    if model.load_data is not None:
        return calibration_data.from_model_data(model)
    return calibration_data.synthetic(model, seed=options.seed, shapes=shapes, dynamic_size=dynamic_size_that_runs(model, shapes))


@dataclass(frozen=True)
class Prepared:
    """What every target of a model shares, made once: the model the targets convert (the pruned one under --prune),
    the calibration and held-out data, and the original's outputs on the held-out inputs, in its task's form."""

    model: LoadedModel
    data: calibration_data.CalibrationSet
    reference: object
    pruning: object | None = None  # converter/prune's result under --prune


def prepare(model: LoadedModel, options: ConvertOptions, data: calibration_data.CalibrationSet, feedback: Feedback) -> Prepared:
    """Pruning (when asked) and the reference run, on prepared data: `convert` and `edgezoo build` share it."""
    for message in data.warnings:
        feedback.warn(message)
    pruning = None
    if options.prune is not None:
        from edgezoo.quantize.prune import prune

        with feedback.step(f"pruning to {options.prune:.0%} sparsity, distilled from the original on {data.num_calibration} samples"):
            pruning = prune(model, data, options.prune, seed=options.seed)
        model = pruning.model  # every target converts the pruned model; parity is checked against it
    with feedback.step(f"running the original on {data.num_heldout} held-out inputs"):
        reference = task_for(model).run_reference(model, data.heldout)  # a detector's reference has its own form
    return Prepared(model, data, reference, pruning)


def convert(source: str | LoadedModel, options: ConvertOptions, feedback: Feedback | None = None) -> ConversionResult:
    """Every target of the run is tried and reported: a target that fails (refused, converter or runtime failure, bad
    input that concerns only it) is recorded in the result and the run summary, and the other targets go on. A run of a
    single target raises that target's error (after writing the summary), as any function that cannot do what was asked."""
    from edgezoo.jobs import runner as jobs

    feedback = feedback or Feedback()
    profiles = resolve_targets(options.targets)  # a bad target fails before any slow work
    server = jobs.start_server(options, len(profiles))  # the job server imports TensorFlow while this one loads and prepares
    try:
        return _convert(source, options, feedback, profiles, server)
    finally:
        jobs.release(server)


def _convert(source, options: ConvertOptions, feedback: Feedback, profiles, server) -> ConversionResult:
    with feedback.step(f"loading {source if isinstance(source, str) else source.name}"):
        model = load(source, options.load_options(feedback.progress)) if isinstance(source, str) else source
    shapes = static_shape.shapes_for_data(model, profiles, options.input_shapes)  # a bad --input-shape fails before slow work
    tree = OutputTree(options.out_dir, model.name, options.force)
    for note in tree.check([p.name for p in profiles]):
        feedback.warn(note)
    try:
        prepared = prepare(model, options, prepare_data(model, options, shapes), feedback)
        model, data = prepared.model, prepared.data
        results = run_targets(model, profiles, options, data, prepared.reference, tree, feedback, prepared.pruning, server)
        try:
            _write_run_summary(model, results, tree, data)
        except OSError as exc:
            raise disk_full(exc, "the run summary", tree.model_dir) or exc
    finally:
        tree.discard_empty()
    if len(results) == 1 and results[0].failure is not None:
        raise results[0].failure.error
    return ConversionResult(model, results)


def run_targets(model, profiles, options, data, reference, tree: OutputTree, feedback, pruning, server=None) -> tuple[TargetResult, ...]:
    """The targets of a run: in this process for a single target, else as jobs in worker processes (edgezoo/jobs/)."""
    from edgezoo.jobs import runner

    if not runner.in_workers(options, len(profiles)):
        return tuple(try_target(model, profile, options, data, reference, tree, feedback, pruning) for profile in profiles)
    return runner.run_targets(model, profiles, options, data, reference, tree, feedback, pruning, server)


def _write_run_summary(model, results: tuple[TargetResult, ...], tree: OutputTree, data) -> None:
    """OUT/<model>/report.json and report.html: this run's targets side by side (the parity matrix), failed ones included."""
    summary = run_summary(model, [(r.target, r.output_dir, r.report) if r.failure is None else failed_row(r) for r in results],
                          tree.model_dir, golden_digest(data.heldout))
    write_json(tree.model_dir / "report.json", summary)
    write_summary_html(tree.model_dir, summary)


def failed_row(result: TargetResult) -> dict:
    """A run-summary row for a target that produced no artifact: what it was asked to be, and why it failed."""
    profile = result.profile
    return {"target": result.target, "failed": True, "status": result.status, "exit_code": result.exit_code,
            "error": result.failure.message, "format": profile.format if profile else None,
            "quantization": result.failure.quantization, "runtime": profile.runtime if profile else None}
