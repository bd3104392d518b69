"""The work of one target: convert, check parity, write the evidence, publish. In this process for a single target,
or in a job's worker process (edgezoo/jobs/) for each target of a run; pipeline.py, above the jobs, runs many.

A target that fails (refused, converter or runtime failure, bad input that concerns only it) is recorded in its
TargetResult, never the end of the run.
"""

from __future__ import annotations

import contextlib
import errno
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from edgezoo import _tf
from edgezoo.errors import ConversionError, DiskFullError, EdgezooError
from edgezoo.formats import converter_for
from edgezoo.formats.base import Artifact, ConversionRequest, QuantizationRequest
from edgezoo.formats.metadata import embed as embed_metadata, read as read_metadata
from edgezoo.formats.placement import key_for as placement_key, report_section as placement_section
from edgezoo.output import OutputTree
from edgezoo.reports import reproducibility
from edgezoo.reports.json_report import target_report, write_json
from edgezoo.reports.target_page import write_target_html
from edgezoo.targets import TargetProfile
from edgezoo.targets.constraints import finish_artifact, prepare_model
from edgezoo.targets.model_cost import footprint
from edgezoo.tasks import task_for
from edgezoo.validate import ParityReport
from edgezoo.validate.device_check import GoldenSet, write_device_check


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


def try_target(model, profile: TargetProfile, options, data, reference, tree: OutputTree, feedback, pruning,
                folder: str | None = None) -> TargetResult:
    """One target of the run; its failure is recorded, never the end of the run. `folder`: its output folder's name
    (default: the profile's name; a build's option variant adds a suffix)."""
    folder = folder or profile.name
    try:
        return convert_target(model, profile, options, data, reference, tree, feedback, pruning, folder)
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


def convert_target(model, profile: TargetProfile, options, data, reference, tree: OutputTree, feedback, pruning=None,
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
    from edgezoo import diagnostics as diag

    checks = diag.Diagnostics()  # what explains the artifact, not the artifact: its failure is reported, the verdict stands
    limit = diag.EXPLAIN_SECONDS  # each of these explains the finished artifact: one that never ends is stopped
    device_check = write_device_check(staging / "device_check", artifact, golden, profile.runtime)
    report = target_report(model=model, profile=profile, artifact=artifact, parity=parity, calibration=data, output_dir=staging,
                           device_check=device_check, footprint=checks.run(diag.FOOTPRINT, lambda: footprint(model, artifact), seconds=limit))
    report.update(extra)
    report["metadata"] = read_metadata(artifact.format, artifact.path)  # read back from the file that was checked
    # Where each op runs (GPU delegate, TFLM kernels, TF.js backends, ONNX Runtime's providers): placement explains, never fails.
    key = placement_key(artifact.format, profile.runtime)
    report["placement"] = checks.run(diag.PLACEMENT, lambda: placement_section(key, artifact.path), seconds=limit) or diag.unavailable(
        checks.failed.get(diag.PLACEMENT, ""))
    # Model Explorer's node-data files (explorer/: precision, SNR where measured, placement, per-op latency where the runtime
    # profiles ops): `edgezoo explore` opens them. The latency is its own diagnostic: when it fails the other overlays stand.
    from edgezoo.reports.explorer import op_latency, write_node_data

    latency = checks.run(diag.LATENCY, lambda: op_latency(artifact, golden), seconds=limit)  # None: no runtime profiles per op
    checks.run(diag.EXPLORER, lambda: write_node_data(staging / "explorer", report, artifact, latency=latency), seconds=limit)
    checks.run(diag.HTML, lambda: write_target_html(staging, report), seconds=limit)
    diag.report_section(report, checks)
    write_json(staging / "report.json", report)
    return report
