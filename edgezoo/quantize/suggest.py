"""A verdict that misses its tolerance says what would pass: the profile's other quantisations, measured.

When a target's parity fails, auto's search (edgezoo/quantize/auto.py) runs over the quantisations the profile has a
tolerance for, without the one that failed, in scratch folders: each candidate converted and checked on the target's
runtime as the artifact was. The smallest that passes is named with the flag that makes it, in the report
(`suggestion`) and on the CLI. Nothing is guessed: a quantisation not measured is never named. The search is a
diagnostic (edgezoo/diagnostics.py): when it cannot run, the report says so and the verdict stands.
"""

from __future__ import annotations

import dataclasses

from edgezoo.formats.base import AutoPreference, Quantization
from edgezoo.errors import EdgezooError
from edgezoo.quantize import auto
from edgezoo import diagnostics as diag

SUGGEST = "passing quantisation"  # the diagnostic's name in reports


def flag_for(candidate: str) -> str:
    """The flag that makes a candidate: a fallback mix is what int8 makes when its parity misses (the fallback is on)."""
    return "--quantize int8" if candidate == auto.MIX else f"--quantize {candidate}"


def measure(target, failed: Quantization, options) -> dict:
    """The `suggestion` section: every other candidate measured, and the smallest that passed (or none)."""
    section = {"failed": failed.value, "passing": None, "flag": None, "size_bytes": None, "snr_db": None, "candidates": []}
    profile, runtime = target.profile, target.profile.runtime
    if not auto.candidate_order(profile.tolerances, exclude=(failed,)):
        section["message"] = (f"{failed.value} missed the tolerance, and target '{profile.name}' has a tolerance for no other "
                              f"quantisation ({', '.join(q.value for q in profile.tolerances)}): choose a target that allows more.")
        return section
    try:  # size alone decides here: the question is what passes (--auto-prefer is auto's)
        found = auto.search(target, dataclasses.replace(options, auto_prefer=AutoPreference.SIZE), exclude=(failed,))
    except EdgezooError as exc:  # every other candidate was refused or could not be made
        section["message"] = f"{failed.value} missed the tolerance, and no other quantisation could be made for '{profile.name}': {exc}"
        return section
    section.update(passing=found.chosen, candidates=[{key: value for key, value in row.items() if key != "kept"} for row in found.rows])
    if found.chosen is None:
        tried = ", ".join(f"{row['candidate']} {row['verdict']}" for row in found.rows)
        section["message"] = f"{failed.value} missed the tolerance, and no other quantisation passes on {runtime} (measured: {tried})."
        return section
    row = next(row for row in found.rows if row["candidate"] == found.chosen)
    section.update(flag=flag_for(found.chosen), size_bytes=row["size_bytes"], snr_db=row["snr_db"])
    figures = f"{row['size_bytes']:,} B" + (f", worst SNR {row['snr_db']:.1f} dB" if row["snr_db"] is not None else "")
    section["message"] = (f"{failed.value} missed the tolerance; {found.chosen} passes on {runtime} (measured: {figures}): "
                          f"use {section['flag']}.")
    return section


def add_to(report: dict, target, quantization, checked, options) -> None:
    """The report's `suggestion` when a --quantize (or profile) mode failed parity itself (not its runtime, not auto,
    whose report lists its candidates already); `diagnostics` says so when it could not be measured."""
    if not (options.suggest and isinstance(quantization, Quantization) and not checked.parity.passed and checked.parity.error is None):
        return
    name = target.profile.name
    checks = diag.Diagnostics(warn=lambda text: target.feedback.warn(f"{name}: {text}"))
    with target.step(f"{quantization.value} missed the tolerance; measuring the other quantisations"):
        section = checks.run(SUGGEST, lambda: measure(target, quantization, options))
    if section is None:
        report["suggestion"] = diag.unavailable(checks.failed[SUGGEST])
        diag.report_section(report, checks)
        return
    report["suggestion"] = section
    target.feedback.warn(f"{name}: {section['message']}")


def summary_lines(report: dict) -> list[str]:
    suggestion = report.get("suggestion")
    if not suggestion or suggestion.get("status") == "unavailable":  # diagnostics' own line says why
        return []
    return [f"  what passes: {suggestion['message']}"]
