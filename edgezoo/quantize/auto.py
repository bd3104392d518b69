"""`--quantize auto`: the smallest artifact that meets the target's tolerance.

Candidates in order of size: full int8 (with the float fallback where the profile allows it), int16x8 and
dynamic-range int8 (int8 weights each), float16, float32; the first that passes ends the search. A fallback mix of
int8 and float ops lies anywhere between int8 and float32 in size, so after one passes the next candidates are still
tried until one passes, and the smaller of the two is kept (dynamic-fcn asked for 38 dB of int8: a 9,840-byte mix against 10,680 bytes of
int16x8; audio-convspec: float16's 31,980 bytes against a 37,088-byte mix). Each candidate tried is reported (size,
SNR, verdict, time). Only modes the profile has a tolerance table for are candidates.
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

    fallback = target.is_tflite and target.profile.allow_float_fallback and options.auto_fallback
    chosen = None
    order = [q for q in (*INTEGER_CANDIDATES, *FLOAT_CANDIDATES) if q in accepted]
    for quantization in order:
        name = quantization.value
        checked = attempt(name, quantization, fallback=fallback and quantization is Quantization.INT8)
        if checked is None:
            continue
        if quantization is Quantization.INT8 and checked.report["float_fallback"]["steps"]:
            # The fallback ran: the plain int8 conversion failed parity, and the mix found is a candidate of its own.
            section = checked.report["float_fallback"]
            plain = section["plain"]
            mix_row = {**rows[-1], "candidate": MIX, "seconds": round(rows[-1]["seconds"] - plain["seconds"], 3), "note": section["message"]}
            if section["outcome"] != "passed":  # the artifact is still the plain int8 one: the mix row has no artifact
                mix_row.update(quantization=None, size_bytes=None, snr_db=None, passed=False, verdict="no mix passed")
            rows[-1:] = [{"candidate": name, "quantization": name, "size_bytes": plain["size_bytes"], "snr_db": plain["snr_db"],
                          "passed": False, "verdict": "parity failed", "seconds": plain["seconds"], "note": plain["parity"]}, mix_row]
            if section["outcome"] == "passed":
                tried[MIX] = tried.pop(name)
                chosen = MIX  # a mix lies anywhere between int8 and float32 in size: the next candidates may be smaller
            continue
        if checked.parity.passed:
            if chosen is None or checked.artifact.size_bytes < tried[chosen][0].artifact.size_bytes:
                chosen = name
            break  # the candidates after this one are larger
    if not tried:  # no candidate could even be made: the last one's error says why
        raise errors[-1]
    kept_name = chosen or _best_failed(rows, tried)
    checked, folder = tried[kept_name]
    for path in checked.artifact.files:
        shutil.copy2(path, workdir / path.relative_to(folder))
    for row in rows:
        row["kept"] = row["candidate"] == kept_name
    section = {"requested": "auto", "chosen": chosen, "kept": kept_name, "candidates": rows, "order": [q.value for q in order]}
    report = dict(checked.report)
    int8 = tried.get(MIX, tried.get("int8"))
    if int8 is not None and "quantization_trace" not in report:
        # The kept artifact is not int8: the int8 candidate's trace and fallback say why, labelled as the int8 candidate's.
        for key in ("quantization_trace", "float_fallback"):
            report[key] = {**int8[0].report[key], "candidate": "int8"}
    return dataclasses.replace(checked, artifact=checked.artifact.relocated(folder, workdir), report={**report, "auto_quantization": section})


def _best_failed(rows: list[dict], tried: dict) -> str:
    """When nothing passes, the artifact kept is the candidate with the best worst-output SNR (the report says none passed)."""
    measured = [row for row in rows if row["candidate"] in tried and row["snr_db"] is not None]
    return max(measured, key=lambda row: row["snr_db"])["candidate"] if measured else next(iter(tried))
