"""Convert, check parity, and for full-integer TFLite trace the error and fall back to float where parity needs it.

This is orchestration, beside the pipeline: converters make artifacts (formats/tflite/convert.py plainly,
formats/tflite/selective.py with some ops left in float), measure.py measures, search.py decides which mix to try.
Each step's artifact is read back (formats/tflite/precision.py) and reports list what it computes in, not what
was asked for.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Callable

from edgezoo._workspace import scratch_dir
from edgezoo.formats.tflite import precision as tflite_precision, selective as tflite_selective
from edgezoo.formats.base import Artifact, ConversionRequest, Quantization
from edgezoo.formats.placement import PlacementRequirementError
from edgezoo.errors import ConversionError, TargetConstraintError, UsageError
from edgezoo.quantize import measure, search
from edgezoo.quantize.advice import advise
from edgezoo import diagnostics as diag

INTEGER = (Quantization.INT8, Quantization.INT16X8)


@dataclass(frozen=True)
class Target:
    """The pipeline's side of one target: its converter, model and profile, and how to finish and check an artifact."""

    converter: ModuleType
    model: object  # LoadedModel, shapes fixed for the target
    profile: object  # TargetProfile
    data: object  # CalibrationSet
    request_for: Callable[[Quantization], ConversionRequest]
    check: Callable[[Artifact, Quantization], object]  # -> ParityReport, judged by the profile's tolerance for that quantisation
    finish: Callable[[Artifact, Path], Artifact]  # the profile's checks on a fresh artifact (ops, flash, arena; C sources)
    feedback: object

    @property
    def is_tflite(self) -> bool:
        return self.converter.FORMAT == "tflite"

    def step(self, text: str):
        return self.feedback.step(f"{self.profile.name}: {text}")


class NotSmaller(Exception):
    """A candidate made and found no smaller than one that already passed: auto does not check it (not an error)."""

    def __init__(self, size_bytes: int):
        super().__init__(f"{size_bytes:,} bytes")
        self.size_bytes = size_bytes


@dataclass(frozen=True)
class CheckedConversion:
    artifact: Artifact
    parity: object  # ParityReport
    report: dict  # sections for the target's report.json


def worst_snr(parity) -> float | None:
    """The worst output's SNR; an output holding NaN or Inf counts as -measure.SNR_CAP_DB (the reports show NaN/Inf)."""
    values = [o.metrics["snr_db"] for o in parity.outputs if o.metrics.get("snr_db") is not None]
    return min(-measure.SNR_CAP_DB if math.isnan(v) else v for v in values) if values else None


class Study:
    """The float32 .tflite of the target's model and what is measured on it: made once per target, only when needed."""

    def __init__(self, target: Target):
        self.target = target
        self.seconds: dict[str, float] = {}
        # Every measurement below is a diagnostic (edgezoo/diagnostics.py): one that cannot run is reported, and
        # the artifact and its verdict stand. The calibration ranges are not: the float fallback's mixes are built on them.
        self.diagnostics = diag.Diagnostics(warn=lambda text: target.feedback.warn(f"{target.profile.name}: {text}"))

    def _timed(self, key: str, fn):
        start = time.perf_counter()
        value = fn()
        self.seconds[key] = round(self.seconds.get(key, 0.0) + time.perf_counter() - start, 3)
        return value

    @cached_property
    def float_tflite(self) -> bytes:
        target = self.target
        folder = scratch_dir("float32-")
        with target.step("converting to float32 TFLite, the reference the quantisation is measured against"):
            artifact = self._timed("float32", lambda: target.converter.convert(target.model, target.request_for(Quantization.FLOAT32), folder))
        return artifact.path.read_bytes()

    @cached_property
    def sites(self) -> tuple[tflite_selective.OpSite, ...]:
        return tflite_selective.op_sites(self.float_tflite)

    @cached_property
    def calibration(self) -> tflite_selective.Calibration:
        with self.target.step(f"calibrating activation ranges on {self.target.data.num_calibration} samples (ai-edge-quantizer)"):
            return self._timed("calibration", lambda: tflite_selective.calibrate(self.float_tflite, self.target.data, self.diagnostics))

    @cached_property
    def samples(self) -> list[dict]:
        return measure.samples_of(self.target.data.heldout)

    @cached_property
    def reference(self) -> list[dict]:
        return measure.float_outputs(self.float_tflite, self.samples)

    @cached_property
    def weights_nsr(self) -> dict[str, float]:
        """{} when it cannot be measured: the trace then has no weights figure (null in the report)."""
        return self._timed("weights", lambda: self.diagnostics.run(diag.WEIGHTS, lambda: measure.output_nsr(
            tflite_selective.weight_only(self.float_tflite), self.samples, self.reference), {}))

    def effects(self, bits: int) -> tuple[measure.LayerEffect, ...]:
        key = f"effects{bits}"
        if key not in self.__dict__:
            def run():
                full = tflite_selective.quantize(self.float_tflite, self.calibration, activation_bits=bits)
                found = measure.layer_effects(self.float_tflite, full, self.samples)
                return self.diagnostics.run(diag.SOLO, lambda: measure.with_solo_effects(
                    found, self.float_tflite, self.calibration, self.samples, self.reference), found)

            self.calibration, self.reference  # made (and timed) first
            with self.target.step(f"measuring each layer's int{bits} error on {len(self.samples)} held-out inputs"):
                self.__dict__[key] = self._timed("layers", lambda: self.diagnostics.run(diag.LAYERS, run, ()))
        return self.__dict__[key]

    def trace(self, artifact: Artifact, bits: int, with_layers: bool, settling: bool) -> measure.Trace | None:
        """`settling`: also whether the activation ranges had settled (a calibration of its own, for advice). None when the
        trace could not be measured (self.diagnostics says why)."""
        def run():
            calibration = self.calibration if settling or with_layers else None
            weights, reference = self.weights_nsr, self.reference  # made (and timed) first
            with self.target.step("tracing the quantisation error to its source (inputs/outputs, weights, activations)"):
                return self._timed("trace", lambda: measure.trace(artifact.path.read_bytes(), self.float_tflite, self.samples, reference,
                                                                  weights_nsr=weights, calibration=calibration))

        found = self.diagnostics.run(diag.TRACE, run)
        return dataclasses.replace(found, layers=self.effects(bits)) if with_layers and found is not None else found

    def mixed(self, request: ConversionRequest, float_ops, folder: Path, bits: int = 8) -> Artifact:
        artifact = tflite_selective.mixed_artifact(self.target.model, request, self.float_tflite, self.calibration, float_ops, folder, bits)
        return self.target.finish(artifact, folder)


def _plain(target: Target, request: ConversionRequest, folder: Path) -> Artifact:
    return target.finish(target.converter.convert(target.model, request, folder), folder)


def convert_checked(target: Target, quantization: Quantization, workdir: Path, options, *, study: Study | None = None,
                    fallback: bool = True, only_if_smaller_than: int | None = None) -> CheckedConversion:
    """One quantisation for the target, converted into `workdir` and checked; full-integer TFLite is traced, and int8
    falls back to float layers (when the profile and `options.auto_fallback` allow it, and `fallback`) until parity
    passes. `only_if_smaller_than`: raise NotSmaller instead of checking an artifact of at least that many bytes."""

    def unless_larger(artifact: Artifact) -> Artifact:
        if only_if_smaller_than is not None and artifact.size_bytes >= only_if_smaller_than:
            raise NotSmaller(artifact.size_bytes)
        return artifact

    request = target.request_for(quantization)
    profile = target.profile
    keep = tuple(options.keep_float)
    if keep and not (quantization is Quantization.INT8 and target.is_tflite):
        raise UsageError(f"--keep-float applies to full-integer int8 TFLite models; target '{profile.name}' converts to "
                         f"{profile.format} ({quantization.value}). Use --quantize int8 with a TFLite target.")
    if not (quantization in INTEGER and target.is_tflite):
        with target.step(f"converting to {profile.format} ({quantization.value})"):
            artifact = unless_larger(_plain(target, request, workdir))
        with target.step(f"checking parity on {profile.runtime}"):
            parity = target.check(artifact, quantization)
        return CheckedConversion(artifact, parity, {"precision": tflite_precision.describe(artifact.path.read_bytes())} if target.is_tflite else {})
    allowed = profile.allow_float_fallback
    if keep and not allowed:
        raise TargetConstraintError(f"target '{profile.name}' runs integer ops only, so no layer can stay in float; drop "
                                    f"--keep-float {' '.join(keep)}.")
    study = study or Study(target)
    kept = search.resolve_layers(keep, study.sites) if keep else ()
    may_fall_back = quantization is Quantization.INT8 and allowed and options.auto_fallback and fallback
    converter_failure = None
    start = time.perf_counter()
    with target.step(f"converting to {profile.format} ({quantization.value})" + (f", {len(kept)} op(s) kept in float" if kept else "")):
        if kept:
            artifact = study.mixed(request, kept, workdir)
        else:
            try:
                artifact = _plain(target, request, workdir)
            except ConversionError as exc:  # TFLite's converter cannot quantise it (a Keras LSTM): start from the float32 model
                if not may_fall_back:
                    raise
                converter_failure = str(exc).splitlines()[0]
                artifact = study.mixed(request, (), workdir)
    unless_larger(artifact)
    with target.step(f"checking parity on {profile.runtime}"):
        parity = target.check(artifact, quantization)
    plain_seconds = round(time.perf_counter() - start, 3)
    bits = 16 if quantization is Quantization.INT16X8 else 8
    falls_back = not parity.passed and may_fall_back
    trace = study.trace(artifact, bits, with_layers=options.explain_quantization or falls_back, settling=not parity.passed)
    section = {"auto": options.auto_fallback, "allowed_by_target": allowed, "requested_keep_float": list(keep),
               "kept_float": _really_float(artifact, kept), "steps": [], "converter_failure": converter_failure,
               "plain": {"size_bytes": artifact.size_bytes, "snr_db": worst_snr(parity), "passed": parity.passed, "parity": parity.summary(),
                         "seconds": plain_seconds}}
    if parity.passed:
        outcome, message = "not needed", f"{quantization.value} parity passed" + (" with the layers asked for in float." if kept else " without moving layers to float.")
        if converter_failure:
            message += (f" TFLite's converter could not make it ({converter_failure}); ai-edge-quantizer quantised the float32 model, "
                        "leaving the ops it cannot quantise in float.")
    elif quantization is not Quantization.INT8:
        outcome, message = "not applicable", f"{quantization.value} parity missed the tolerance ({parity.summary()}); the float fallback applies to int8."
    elif not allowed:
        outcome, message = "forbidden by target", (f"int8 parity missed the tolerance ({parity.summary()}), and target '{profile.name}' runs "
                                                   "integer ops only, so no layer can fall back to float.")
    elif not options.auto_fallback or not fallback:
        outcome, message = "disabled", f"int8 parity missed the tolerance ({parity.summary()}); automatic float fallback is off."
    else:
        # The fallback needs the calibration ranges to build its mixes; when they cannot be measured it could not run, and
        # the plain int8 artifact stands with its verdict.
        fell_back = study.diagnostics.run("float fallback", lambda: _fall_back(target, study, request, kept, trace, workdir, section,
                                                                                 artifact, parity))
        if fell_back is None:
            outcome, message = "could not run", (f"int8 parity missed the tolerance ({parity.summary()}); the float fallback could not run "
                                                 f"({study.diagnostics.failed['float fallback']}). The artifact kept is the plain int8 one.")
        else:
            artifact, parity, outcome, message = fell_back
    section.update(outcome=outcome, message=message)
    advice = [] if trace is None else study.diagnostics.run(diag.ADVICE, lambda: advise(
        trace, quantization=quantization, integer_io=request.integer_io, fallback_allowed=allowed, calibration=target.data,
        passed=parity.passed, float_end_failed=outcome == "failed" and bool(section["steps"])), [])
    if outcome in ("forbidden by target", "failed", "disabled", "not applicable", "could not run"):
        target.feedback.warn(message + (" " + " ".join(advice) if advice else ""))
    report = {
        "precision": tflite_precision.describe(artifact.path.read_bytes()),
        "quantization_trace": ({**trace.to_json(), "advice": advice, "seconds": dict(study.seconds),
                                "layers": [layer.to_json() for layer in trace.layers]} if trace is not None
                               else {**diag.unavailable(study.diagnostics.failed[diag.TRACE]), "advice": [], "seconds": dict(study.seconds)}),
        "float_fallback": section,
    }
    diag.report_section(report, study.diagnostics)
    return CheckedConversion(artifact, parity, report)


def _really_float(artifact: Artifact, sites) -> list[str]:
    """The layers of `sites` whose ops compute in float in the artifact itself."""
    computed = tflite_precision.float_ops(artifact.path.read_bytes())
    return list(dict.fromkeys(tflite_precision.layer_name(site.output) for site in sites if site.output in computed))


def _fall_back(target: Target, study: Study, request, kept, trace, workdir: Path, section: dict, artifact, parity):
    """Keep the ops of worst measured effect in float, the count found by bisection; the smallest passing mix replaces the
    plain int8 artifact in workdir."""
    ranked = [site for site in _ranked_sites(study, trace) if site not in kept]
    section["ranking_measured"] = bool(_measured_layers(study, trace))
    section["ranking"] = [{"layer": tflite_precision.layer_name(site.output), "op": site.op} for site in ranked]
    made: dict[int, tuple[Artifact, object, Path]] = {}

    def evaluate(count: int) -> search.Step:
        folder = scratch_dir("fallback-")
        start = time.perf_counter()
        with target.step(f"int8 parity missed; trying with the {count} op(s) of worst effect in float"):
            try:
                mix = study.mixed(request, (*kept, *ranked[:count]), folder)
                mix_parity = target.check(mix, Quantization.INT8)
            except PlacementRequirementError as exc:  # the mix splits the graph on the GPU delegate: it does not pass
                return search.Step(count, exc.size_bytes, None, False, time.perf_counter() - start,
                                   error=f"refused by the target's GPU requirement: {exc.summary}")
            except (TargetConstraintError, ConversionError) as exc:
                return search.Step(count, None, None, False, time.perf_counter() - start, error=str(exc))
        made[count] = (mix, mix_parity, folder)
        described = tflite_precision.describe(mix.path.read_bytes())
        return search.Step(count, mix.size_bytes, worst_snr(mix_parity), mix_parity.passed, time.perf_counter() - start,
                           tuple(described["float_layers"]), described["ops_by_precision"], parity=mix_parity.summary())

    steps, best = search.bisect(len(ranked), evaluate)
    section["steps"] = [step.to_json() for step in steps]
    section["float_end_count"] = len(ranked)
    if best is None:
        section["kept_step"] = None
        end = next((s for s in steps if s.float_count == len(ranked)), steps[-1])
        shares = trace.shares() if trace is not None else None
        return (artifact, parity, "failed",
                f"int8 parity misses the tolerance even at the float end (all {len(ranked)} quantisable op(s) in float: "
                + (f"{end.snr_db:.1f} dB, {end.parity}" if end.snr_db is not None else end.error or "no figures")
                + (f"); the plain int8 error was {shares['io']:.0%} inputs/outputs, {shares['weights']:.0%} weights, "
                   f"{shares['activations']:.0%} activations." if shares else "); the error trace is unavailable.")
                + " The artifact kept is the plain int8 one.")
    mix, mix_parity, folder = made[best.float_count]
    for path in mix.files:
        shutil.copy2(path, workdir / path.relative_to(folder))
    section["kept_step"] = steps.index(best)
    section["kept_float"] = _really_float(mix.relocated(folder, workdir), (*kept, *ranked[: best.float_count]))
    moved = ", ".join(f"{tflite_precision.layer_name(site.output)} ({site.op})" for site in ranked[: best.float_count])
    return (mix.relocated(folder, workdir), mix_parity, "passed",
            f"int8 parity passed with {best.float_count} of {len(ranked)} quantisable op(s) in float" + (f" ({moved})" if moved else "")
            + f", {len(steps)} conversion(s); {best.size_bytes:,} bytes"
            + (f", worst SNR {best.snr_db:.1f} dB." if best.snr_db is not None else f" ({best.parity})."))  # a detector's parity has no SNR


def _measured_layers(study: Study, trace) -> tuple:
    return trace.layers if trace is not None and trace.layers else study.effects(8)


def _ranked_sites(study: Study, trace) -> list[tflite_selective.OpSite]:
    """The ops that compute in int8, in the order of their measured effect, worst first. When the per-layer effect is
    unavailable (a diagnostic that failed), the ops ai-edge-quantizer can quantise in reverse graph order, nearest the
    outputs first: the bisection still finds a passing mix, perhaps with more ops in float (`ranking_measured`: false)."""
    by_output = {site.output: site for site in study.sites}
    layers = _measured_layers(study, trace)
    if layers:
        return [by_output[layer.output] for layer in layers if layer.output in by_output]
    known = tflite_selective.known_ops()
    return [site for site in reversed(study.sites) if site.op in known and not site.pinned_float and site.output]


def summary_lines(report: dict) -> list[str]:
    """Lines for the CLI from a target report's quantisation sections."""
    lines = diag.summary_lines(report)
    trace = report.get("quantization_trace")
    if trace and trace.get("status") != "unavailable":
        shares = trace["shares"]
        lines.append(f"  int8 error by source ({trace['worst_output']}): inputs/outputs {shares['io']:.0%}, weights {shares['weights']:.0%}, "
                     f"activations {shares['activations']:.0%}")
        worst = [layer for layer in trace.get("layers", []) if layer.get("solo_snr_db") is not None][:3]
        if worst:
            lines.append("  worst layers (output SNR with the layer alone in int8): "
                         + ", ".join(f"{layer['layer']} {layer['solo_snr_db']:.1f} dB" for layer in worst))
        lines.extend(f"  advice: {line}" for line in trace.get("advice", []))
    fallback = report.get("float_fallback")
    if fallback and fallback.get("outcome") != "not needed":
        lines.append(f"  float fallback: {fallback['message']}")
    elif fallback and fallback.get("kept_float"):
        lines.append(f"  kept in float: {', '.join(fallback['kept_float'])}")
    auto = report.get("auto_quantization")
    if auto:
        if auto.get("placement_trade"):
            lines.append(f"  auto, GPU requirement: {auto['placement_trade']}")
        lines.append("  auto: " + "; ".join(f"{c['candidate']} {c['verdict']}" + (f" {c['size_bytes']:,} B" if c.get("size_bytes") else "")
                                             for c in auto["candidates"]) + f" -> {auto['chosen'] or 'none passed'}")
    return lines
