"""`--quantize auto`: the smallest artifact that meets the target's tolerance (or, asked, the smallest full-integer one).

Every candidate the profile has a tolerance for is made, in the order full int8 (with the float fallback where the profile
allows it), int16x8, dynamic-range int8, float16, float32, and measured by its real size: sizes do not follow the names
(on a small model int8's quantize and dequantize ops and per-channel scales can outweigh what its weights save, and
float16 comes out smaller; dynamic-range int8 has no activation ranges to store and is often smaller than int8). A
candidate is checked on the runtime only when it could be kept, that is when it is smaller than the best that passed so
far; the report lists every candidate, its size, SNR and verdict. `--auto-prefer integer` keeps a passing full-integer
candidate (int8, int16x8; a fallback mix has float ops) over any smaller one that is not: integer-only accelerators.

A profile that requires the GPU delegate (require_gpu_delegate, max_gpu_partitions) refuses each candidate whose own
artifact breaks it (targets/constraints.py finish_artifact): int8's QUANTIZE and DEQUANTIZE can split the delegated graph
where float16 keeps it whole. So auto keeps the smallest passing candidate that meets the requirement, and its
`placement_trade` says what the smaller refused ones would have cost ("int8 (48,000 B): GPU delegate: 6 of 7 ops,
2 partitions; kept float16 (82,000 B): GPU delegate: 5 of 6 ops, 1 partition").
"""

from __future__ import annotations

import dataclasses
import shutil
import time

from edgezoo._workspace import scratch_dir
from edgezoo.formats.base import AutoPreference, Quantization
from edgezoo.formats.placement import PlacementRequirementError, place
from edgezoo.errors import EdgezooError
from edgezoo.quantize.loop import CheckedConversion, NotSmaller, Study, Target, convert_checked, worst_snr

INTEGER_CANDIDATES = (Quantization.INT8, Quantization.INT16X8, Quantization.DYNAMIC_INT8)
MIX = "int8 + float fallback"
FLOAT_CANDIDATES = (Quantization.FLOAT16, Quantization.FLOAT32)
FULL_INTEGER = (Quantization.INT8.value, Quantization.INT16X8.value)  # candidate names whose every op computes in integers


def _row(name: str, checked: CheckedConversion | None, seconds: float, error: EdgezooError | None = None, note: str = "") -> dict:
    if checked is None:
        return {"candidate": name, "quantization": None, "size_bytes": None, "snr_db": None, "passed": False,
                "verdict": (f"refused (exit {error.exit_code})" if error.exit_code == 3 else f"not made (exit {error.exit_code})") if error else "skipped", "seconds": round(seconds, 3),
                "note": str(error) if error else note}
    return {"candidate": name, "quantization": checked.artifact.quantization.value, "size_bytes": checked.artifact.size_bytes,
            "snr_db": worst_snr(checked.parity), "passed": checked.parity.passed,
            "verdict": "passed" if checked.parity.passed else "parity failed", "seconds": round(seconds, 3),
            "note": note or ("" if checked.parity.passed else checked.parity.summary())}


def candidate_order(accepted, exclude=()) -> list[Quantization]:
    """The candidates a profile's tolerance table admits, in the order they are made."""
    return [q for q in (*INTEGER_CANDIDATES, *FLOAT_CANDIDATES) if q in accepted and q not in exclude]


@dataclasses.dataclass(frozen=True)
class Search:
    """Every candidate measured, and the one kept: `chosen` passed (None when none did; `kept` is then the best failed)."""

    rows: list
    tried: dict  # candidate name -> (CheckedConversion, the scratch folder holding its files)
    chosen: str | None
    kept: str
    order: list
    placement_trade: str | None = None  # the candidates the GPU requirement refused against the one kept


def search(target: Target, options, exclude=()) -> Search:
    """Make and measure the candidates (edgezoo.quantize.auto's docstring); raises the last error when none can be made."""
    prefer = AutoPreference(options.auto_prefer)
    study = Study(target) if target.is_tflite else None
    rows: list[dict] = []
    tried: dict[str, tuple[CheckedConversion, object]] = {}
    errors: list[EdgezooError] = []
    chosen = None

    def rank(name: str, size: int) -> tuple:
        """Smaller is better: under `integer`, any full-integer candidate ranks before every other."""
        return (prefer is AutoPreference.INTEGER and name not in FULL_INTEGER, size)

    def attempt(name: str, quantization: Quantization, **kwargs) -> CheckedConversion | None:
        folder = scratch_dir(f"auto-{quantization.value}-")
        start = time.perf_counter()
        best = tried[chosen][0].artifact.size_bytes if chosen else None
        limit = None  # the size it must beat to be checked: only where the ranking is by size against the best so far
        if chosen is not None:
            if rank(name, 0)[0] > rank(chosen, 0)[0]:
                rows.append(_row(name, None, 0.0, note=f"not made: {chosen} passed, and --auto-prefer integer keeps a full-integer candidate"))
                rows[-1]["verdict"] = "not tried"
                return None
            if rank(name, 0)[0] == rank(chosen, 0)[0]:
                limit = best
        try:
            checked = convert_checked(target, quantization, folder, options, study=study, only_if_smaller_than=limit, **kwargs)
        except NotSmaller as larger:
            rows.append({**_row(name, None, time.perf_counter() - start), "quantization": quantization.value, "size_bytes": larger.size_bytes,
                         "verdict": "not checked", "note": f"{larger.size_bytes:,} B is not smaller than {chosen}'s {best:,} B, which passed"})
            return None
        except PlacementRequirementError as exc:  # made, and split on the GPU delegate: the trade is reported
            rows.append({**_row(name, None, time.perf_counter() - start, exc), "quantization": quantization.value,
                         "size_bytes": exc.size_bytes, "gpu_placement": exc.summary})
            errors.append(exc)
            return None
        except EdgezooError as exc:  # refused (ops, size, arena) or not convertible: the next candidate may do
            rows.append(_row(name, None, time.perf_counter() - start, exc))
            errors.append(exc)
            return None
        rows.append(_row(name, checked, time.perf_counter() - start))
        tried[name] = (checked, folder)
        return checked

    def consider(name: str) -> None:
        nonlocal chosen
        size = tried[name][0].artifact.size_bytes
        if chosen is None or rank(name, size) < rank(chosen, tried[chosen][0].artifact.size_bytes):
            chosen = name

    fallback = target.is_tflite and target.profile.allow_float_fallback and options.auto_fallback
    order = candidate_order(target.profile.tolerances, exclude)
    for quantization in order:
        name = quantization.value
        checked = attempt(name, quantization, fallback=fallback and quantization is Quantization.INT8)
        if checked is None:
            continue
        section = checked.report.get("float_fallback")  # TFLite int8 only: ONNX's int8 has no float fallback
        if quantization is Quantization.INT8 and section and section["steps"]:
            # The fallback ran: the plain int8 conversion failed parity, and the mix found is a candidate of its own.
            plain = section["plain"]
            mix_row = {**rows[-1], "candidate": MIX, "seconds": round(rows[-1]["seconds"] - plain["seconds"], 3), "note": section["message"]}
            if section["outcome"] != "passed":  # the artifact is still the plain int8 one: the mix row has no artifact
                mix_row.update(quantization=None, size_bytes=None, snr_db=None, passed=False, verdict="no mix passed")
            rows[-1:] = [{"candidate": name, "quantization": name, "size_bytes": plain["size_bytes"], "snr_db": plain["snr_db"],
                          "passed": False, "verdict": "parity failed", "seconds": plain["seconds"], "note": plain["parity"]}, mix_row]
            if section["outcome"] == "passed":
                tried[MIX] = tried.pop(name)
                consider(MIX)
            continue
        if checked.parity.passed:
            consider(name)
    if not tried:  # no candidate could even be made (none passed, so none was skipped as larger): the last error says why
        raise errors[-1]
    kept = chosen or _best_failed(rows, tried)
    for row in rows:
        row["kept"] = row["candidate"] == kept
    return Search(rows, tried, chosen, kept, [q.value for q in order], _placement_trade(rows, tried, kept))


def _placement_trade(rows: list[dict], tried: dict, kept: str) -> str | None:
    """What the GPU requirement cost: the candidates it refused (their placement and size) against the one kept."""
    refused = [row for row in rows if row.get("gpu_placement")]
    if not refused:
        return None
    artifact = tried[kept][0].artifact
    (placement,) = place("tflite", artifact.path)
    return ("; ".join(f"{row['candidate']} ({row['size_bytes']:,} B): {row['gpu_placement']}" for row in refused)
            + f"; kept {kept} ({artifact.size_bytes:,} B): {placement.summary()}")


def convert_auto(target: Target, workdir, options) -> CheckedConversion:
    found = search(target, options)
    checked, folder = found.tried[found.kept]
    for path in checked.artifact.files:
        shutil.copy2(path, workdir / path.relative_to(folder))
    section = {"requested": "auto", "prefer": AutoPreference(options.auto_prefer).value, "chosen": found.chosen, "kept": found.kept,
               "candidates": found.rows, "order": found.order}
    if found.placement_trade:
        section["placement_trade"] = found.placement_trade
    report = dict(checked.report)
    int8 = found.tried.get(MIX, found.tried.get("int8"))
    if int8 is not None and "quantization_trace" not in report:
        # The kept artifact is not int8: the int8 candidate's trace and fallback say why, labelled as the int8 candidate's.
        for key in ("quantization_trace", "float_fallback"):  # TFLite's int8 has them; ONNX's int8 neither
            if key in int8[0].report:
                report[key] = {**int8[0].report[key], "candidate": "int8"}
    return dataclasses.replace(checked, artifact=checked.artifact.relocated(folder, workdir), report={**report, "auto_quantization": section})


def _best_failed(rows: list[dict], tried: dict) -> str:
    """When nothing passes, the artifact kept is the candidate with the best worst-output SNR (the report says none passed)."""
    measured = [row for row in rows if row["candidate"] in tried and row["snr_db"] is not None]
    return max(measured, key=lambda row: row["snr_db"])["candidate"] if measured else next(iter(tried))
