"""`--quantize auto`: the smallest artifact that meets the target's tolerance.

Candidates in order of size: full int8, int16x8 and dynamic-range int8 (int8 weights each), then float16, then
float32. The int8 float fallback (a mix of int8 and float ops, where the profile allows it) lies anywhere between
int8 and float32 in size, so it is tried after the integer candidates and float16, and is kept only when it is
smaller than a passing float16 artifact. The first candidate that passes is kept; each one tried is reported (size, SNR, verdict,
time). Only modes the profile has a tolerance table for are candidates.
"""

from __future__ import annotations

import dataclasses
import shutil
import time

from edgezoo._workspace import scratch_dir
from edgezoo.converter.base import Quantization
from edgezoo.errors import EdgezooError
from edgezoo.quantize.loop import CheckedConversion, Study, Target, convert_checked, worst_snr

INTEGER_CANDIDATES = (Quantization.INT8, Quantization.INT16X8, Quantization.DYNAMIC_INT8)
MIX = "int8 + float fallback"
FLOAT_CANDIDATES = (Quantization.FLOAT16, Quantization.FLOAT32)


def _row(name: str, checked: CheckedConversion | None, seconds: float, error: EdgezooError | None = None, note: str = "") -> dict:
    if checked is None:
        return {"candidate": name, "quantization": None, "size_bytes": None, "snr_db": None, "passed": False,
                "verdict": f"refused (exit {error.exit_code})" if error else "skipped", "seconds": round(seconds, 3),
                "note": str(error) if error else note}
    return {"candidate": name, "quantization": checked.artifact.quantization.value, "size_bytes": checked.artifact.size_bytes,
            "snr_db": worst_snr(checked.parity), "passed": checked.parity.passed,
            "verdict": "passed" if checked.parity.passed else "parity failed", "seconds": round(seconds, 3),
            "note": note or ("" if checked.parity.passed else checked.parity.summary())}


def convert_auto(target: Target, workdir, options) -> CheckedConversion:
    accepted = target.profile.tolerances
    study = Study(target) if target.is_tflite else None
    rows: list[dict] = []
    tried: dict[str, tuple[CheckedConversion, object]] = {}
    errors: list[EdgezooError] = []

    def attempt(name: str, quantization: Quantization, **kwargs) -> CheckedConversion | None:
        folder = scratch_dir(f"auto-{quantization.value}-")
        start = time.perf_counter()
        try:
            checked = convert_checked(target, quantization, folder, options, study=study, **kwargs)
        except EdgezooError as exc:  # refused (ops, size, arena) or not convertible: the next candidate may do
            rows.append(_row(name, None, time.perf_counter() - start, exc))
            errors.append(exc)
            return None
        rows.append(_row(name, checked, time.perf_counter() - start))
        tried[name] = (checked, folder)
        return checked

    chosen = None
    for quantization in INTEGER_CANDIDATES:
        if quantization not in accepted:
            continue
        checked = attempt(quantization.value, quantization, fallback=False)
        if checked is not None and checked.parity.passed:
            chosen = quantization.value
            break
    float16 = None
    if chosen is None and Quantization.FLOAT16 in accepted:
        float16 = attempt("float16", Quantization.FLOAT16)
    fallback_possible = target.is_tflite and Quantization.INT8 in accepted and target.profile.allow_float_fallback and options.auto_fallback
    if chosen is None and fallback_possible:
        mix = attempt(MIX, Quantization.INT8)
        if mix is not None and mix.parity.passed and mix.report["float_fallback"]["outcome"] == "passed":
            chosen = MIX
    if float16 is not None and float16.parity.passed and (chosen is None or float16.artifact.size_bytes <= tried[chosen][0].artifact.size_bytes):
        chosen = "float16"  # a mix of int8 and float ops can be larger than float16: the smaller one is kept
    if chosen is None and Quantization.FLOAT32 in accepted:
        if attempt("float32", Quantization.FLOAT32) is not None and tried["float32"][0].parity.passed:
            chosen = "float32"
    if not tried:  # no candidate could even be made: the last one's error says why
        raise errors[-1]
    kept_name = chosen or _best_failed(rows, tried)
    checked, folder = tried[kept_name]
    for path in checked.artifact.files:
        shutil.copy2(path, workdir / path.relative_to(folder))
    for row in rows:
        row["kept"] = row["candidate"] == kept_name
    section = {"requested": "auto", "chosen": chosen, "kept": kept_name, "candidates": rows,
               "order": [q.value for q in (*INTEGER_CANDIDATES, *FLOAT_CANDIDATES) if q in accepted]}
    return dataclasses.replace(checked, artifact=checked.artifact.relocated(folder, workdir),
                               report={**checked.report, "auto_quantization": section})


def _best_failed(rows: list[dict], tried: dict) -> str:
    """When nothing passes, the artifact kept is the candidate with the best worst-output SNR (the report says none passed)."""
    measured = [row for row in rows if row["candidate"] in tried and row["snr_db"] is not None]
    return max(measured, key=lambda row: row["snr_db"])["candidate"] if measured else next(iter(tried))
