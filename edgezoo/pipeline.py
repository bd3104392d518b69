"""The whole path for one source: load, prepare data, then per target convert, validate, report, publish."""

from __future__ import annotations

import contextlib
import errno
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from edgezoo import _tf, calibration as calibration_data
from edgezoo.converter import converter_for
from edgezoo.converter.base import Artifact, ConversionRequest, QuantizationRequest
from edgezoo.errors import ConversionError, DiskFullError, EdgezooError
from edgezoo.metadata import embed as embed_metadata, read as read_metadata
from edgezoo.options import ConvertOptions
from edgezoo.output import OutputTree
from edgezoo.reports import reproducibility
from edgezoo.reports.json_report import golden_digest, run_summary, target_report, write_json
from edgezoo.targets import TargetProfile, builtin_profiles, resolve_profile, static_shape
from edgezoo.targets.constraints import finish_artifact, prepare_model
from edgezoo.targets.model_cost import footprint
from edgezoo.validate import ParityReport
from edgezoo.validate.device_check import GoldenSet, write_device_check
from edgezoo.reports.summary_page import write_summary_html
from edgezoo.reports.target_page import write_target_html
from edgezoo.tasks import task_for
from edgezoo.zoo import LoadedModel, load


@dataclass
class Feedback:
    """How the pipeline tells its caller what it is doing; silent by default (the CLI shows it)."""

    step: Callable[[str], ContextManager] = lambda text: contextlib.nullcontext()
    warn: Callable[[str], None] = lambda text: None
    progress: Callable[[str, int, int | None], None] | None = None  # downloads: (file, bytes done, bytes total)


# A target that could not be made, by its error's exit code (DESIGN.md): what the run summary calls it.
FAILURE_STATUS = {2: "bad input", 3: "refused", 4: "failed"}


@dataclass(frozen=True)
class TargetFailure:
    """Why a target of a run produced no artifact; the other targets of the run go on."""

    error: EdgezooError = field(compare=False)
    quantization: str | None = None  # what the target was asked for (nothing was made to measure)

    @property
    def exit_code(self) -> int:
        return self.error.exit_code

    @property
    def status(self) -> str:
        return FAILURE_STATUS.get(self.exit_code, "failed")

    @property
    def message(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class TargetResult:
    target: str
    output_dir: Path | None  # None when the target failed: nothing was published for it
    artifact: Artifact | None
    parity: ParityReport | None
    report: dict | None
    failure: TargetFailure | None = None
    profile: TargetProfile | None = field(default=None, compare=False, repr=False)

    @property
    def passed(self) -> bool:
        return self.failure is None and self.parity.passed

    @property
    def exit_code(self) -> int:
        """0 passed, 1 parity below tolerance, else the exit code of the error that stopped the target."""
        if self.failure is not None:
            return self.failure.exit_code
        return self.parity.exit_code

    @property
    def status(self) -> str:
        if self.failure is not None:
            return self.failure.status
        return self.parity.status


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
    return calibration_data.synthetic(model, seed=options.seed, shapes=shapes)


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
        data = prepare_data(model, options, shapes)
        for message in data.warnings:
            feedback.warn(message)
        pruning = None
        if options.prune is not None:
            from edgezoo.converter.prune import prune

            with feedback.step(f"pruning to {options.prune:.0%} sparsity, distilled from the original on {data.num_calibration} samples"):
                pruning = prune(model, data, options.prune, seed=options.seed)
            model = pruning.model  # every target converts the pruned model; parity is checked against it
        with feedback.step(f"running the original on {data.num_heldout} held-out inputs"):
            reference = task_for(model).run_reference(model, data.heldout)
        results = run_targets(model, profiles, options, data, reference, tree, feedback, pruning, server)
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
        return tuple(_try_target(model, profile, options, data, reference, tree, feedback, pruning) for profile in profiles)
    return runner.run_targets(model, profiles, options, data, reference, tree, feedback, pruning, server)


def _try_target(model, profile: TargetProfile, options, data, reference, tree: OutputTree, feedback, pruning,
                folder: str | None = None) -> TargetResult:
    """One target of the run; its failure is recorded, never the end of the run. `folder`: its output folder's name
    (default: the profile's name; a build's option variant adds a suffix)."""
    folder = folder or profile.name
    try:
        return _convert_target(model, profile, options, data, reference, tree, feedback, pruning, folder)
    except EdgezooError as exc:
        error = disk_full(exc, f"target '{profile.name}'", tree.model_dir) or exc
    except Exception as exc:  # an unwrapped third-party failure or a bug: this target failed, the others go on
        error = disk_full(exc, f"target '{profile.name}'", tree.model_dir)
        if error is None:
            if _tf.is_verbose():
                traceback.print_exc()
            error = ConversionError(f"target '{profile.name}' failed unexpectedly: {type(exc).__name__}: {exc}. "
                                    "Re-run with --verbose for the traceback.")
            error.__cause__ = exc
    failure = TargetFailure(error, (options.quantize or profile.quantization).value)
    feedback.warn(f"{folder}: {failure.status} (exit {failure.exit_code}): {failure.message}")
    return TargetResult(folder, None, None, None, None, failure, profile)


# errno values that mean "no room to write": the disk, a quota, or the process' file-size limit.
NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "more than this process may write to one file: a file-size limit, RLIMIT_FSIZE"}


def disk_full(exc: BaseException, what: str, folder: Path) -> DiskFullError | None:
    """A DiskFullError when a write ran out of room anywhere in the exception's chain (converters wrap OSError), else None."""
    seen = exc
    while seen is not None and not (isinstance(seen, OSError) and seen.errno in NO_ROOM):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    where = f" ({seen.filename})" if seen.filename else ""
    error = DiskFullError(f"{what}: a write failed{where}: {seen.strerror or 'no room'} ({NO_ROOM[seen.errno]}). Nothing was published for it and existing output "
                          f"was left as it was. Free space where {folder} is, or choose another --out.")
    error.__cause__ = exc
    return error


def conversion_request(profile: TargetProfile, quantization, data) -> ConversionRequest:
    """What the profile asks of its converter for this quantisation; calibration data only where it is used."""
    return ConversionRequest(
        quantization=quantization,
        calibration=data if quantization.needs_calibration else None,
        integer_io=profile.integer_io and quantization.needs_calibration,
        format_options=profile.format_options,
    )


def _convert_target(model, profile: TargetProfile, options, data, reference, tree: OutputTree, feedback, pruning=None,
                    folder: str | None = None) -> TargetResult:
    from edgezoo.quantize import suggest
    from edgezoo.quantize.auto import convert_auto
    from edgezoo.quantize.loop import Target, convert_checked

    quantization = options.quantize or profile.quantization
    auto = quantization is QuantizationRequest.AUTO
    if not auto:
        profile.tolerance_for(quantization)  # a mode the target has no tolerance for fails before any slow work
    request = None if auto else conversion_request(profile, quantization, data)
    # Fixed input shapes (--input-shape, the profile's input_shapes and fixed_batch); ops the device lacks refused.
    task = task_for(model)  # detectors: the post-processing the target takes, and parity by matched boxes (edgezoo/tasks/)
    target_model = prepare_model(task.target_model(model, profile), profile, feedback.step, request, options.keep_float,
                                 input_shapes=options.input_shapes, data=data)
    reference = task.target_reference(model, reference, profile)
    folder = folder or profile.name
    with tree.staging(folder) as staging:
        check = lambda artifact, mode: task.check_parity(  # noqa: E731
            artifact, model, profile, data.heldout, reference, profile.tolerance_for(mode)
        )
        # Metadata first (labels, normalisation, source), so the target's checks and the parity check see the file that ships;
        # then ops, flash, arena and RAM, and C sources.
        finish = lambda artifact, folder: finish_artifact(profile, embed_metadata(model, task.finish_artifact(model, profile, artifact)),  # noqa: E731
                                                           folder, feedback.step)
        target = Target(converter_for(profile.format), target_model, profile, data, lambda mode: conversion_request(profile, mode, data),
                        check, finish, feedback)
        # Converts and checks parity; full-integer TFLite is traced to its error's sources and int8 falls back to float
        # layers where parity needs it; auto tries the candidates in order of size (edgezoo/quantize/).
        checked = convert_auto(target, staging, options) if auto else convert_checked(target, quantization, staging, options)
        artifact, parity = checked.artifact, checked.parity
        golden = GoldenSet(model.name, profile.name, parity.tolerance, model.is_classifier, data.heldout, reference,
                           detection=task.golden_settings(model))
        extra = {**checked.report, **task.report_sections(parity, model, data)}
        suggest.add_to(extra, target, quantization, checked, options)  # a failed verdict: what passes, measured
        extra["reproducibility"] = reproducibility.section(model=model, profile=profile, quantization=quantization, options=options,
                                                           data=data, artifact=artifact, folder=staging)
        if pruning is not None:
            extra["pruning"] = pruning.to_json(artifact)
        report = write_evidence(staging, model=model, profile=profile, artifact=artifact, parity=parity, data=data, golden=golden,
                                extra=extra)
        final = tree.publish(staging, folder)
    return TargetResult(folder, final, artifact.relocated(staging, final), parity, report, profile=profile)


def write_evidence(staging: Path, *, model, profile, artifact, parity, data, golden, extra: dict) -> dict:
    """What travels with every checked artifact: device_check/, report.json and report.html. Returns the report."""
    from edgezoo.reports import diagnostics as diag

    checks = diag.Diagnostics()  # what explains the artifact, not the artifact: its failure is reported, the verdict stands
    device_check = write_device_check(staging / "device_check", artifact, golden, profile.runtime)
    report = target_report(model=model, profile=profile, artifact=artifact, parity=parity, calibration=data, output_dir=staging,
                           device_check=device_check, footprint=checks.run(diag.FOOTPRINT, lambda: footprint(model, artifact)))
    report.update(extra)
    report["metadata"] = read_metadata(artifact.format, artifact.path)  # read back from the file that was checked
    checks.run(diag.HTML, lambda: write_target_html(staging, report))
    diag.report_section(report, checks)
    write_json(staging / "report.json", report)
    return report


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
