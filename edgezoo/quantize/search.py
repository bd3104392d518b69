"""Searching for the mix: which ops stay float so that parity passes with as few float ops as possible.

The ops are ranked by their measured effect (measure.layer_effects, worst first); keeping the worst k in float is one
candidate. Parity is assumed to improve with k, so the smallest passing k is found by bisection over 0..N: about
log2(N) + 2 conversions, not one per layer. k = N is the float end (no op in int8), which reproduces the float32 model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgezoo.errors import UsageError
from edgezoo.formats.tflite import layer_name


@dataclass(frozen=True)
class Step:
    """One candidate of the search, as measured: the artifact converted, inspected and checked."""

    float_count: int  # the k worst ops requested in float
    size_bytes: int | None
    snr_db: float | None  # the worst output's
    passed: bool
    seconds: float
    float_layers: tuple[str, ...] = ()  # read back from the artifact: layers whose ops compute in float
    ops_by_precision: dict = field(default_factory=dict)
    error: str | None = None  # the step could not be made or was refused (size, ops)
    parity: str = ""  # the parity check's summary: what was out of tolerance

    def to_json(self) -> dict:
        return {"float_count": self.float_count, "size_bytes": self.size_bytes, "snr_db": self.snr_db, "passed": self.passed,
                "seconds": round(self.seconds, 3), "float_layers": list(self.float_layers),
                "ops_by_precision": self.ops_by_precision, "error": self.error, "parity": self.parity}


def bisect(count: int, evaluate: Callable[[int], Step]) -> tuple[list[Step], Step | None]:
    """The smallest k in 0..count whose step passes (None when even k = count fails), and every step measured, in order.

    k = 0 is measured first (every op in int8, which may already pass where the plain conversion did not); the float
    end k = count only when bisection never reached it.
    """
    steps = [evaluate(0)]
    if steps[0].passed or count == 0:
        return steps, steps[0] if steps[0].passed else None
    low, high, best = 0, count, None
    while high - low > 1:
        middle = (low + high) // 2
        step = evaluate(middle)
        steps.append(step)
        if step.passed:
            high, best = middle, step
        else:
            low = middle
    if best is None:
        step = evaluate(count)
        steps.append(step)
        best = step if step.passed else None
    return steps, best


# --- layer names the user gives ---------------------------------------------------------------------------


def _names_layer(wanted: str, tensor: str) -> bool:
    """Whether a user's layer name means this op's output tensor: the full name, one fused part, a path prefix, or one
    path component (conv2 means digits_cnn/conv2/Relu;digits_cnn/conv2/BiasAdd)."""
    for part in tensor.split(";"):
        if wanted in (tensor, part) or part.startswith(wanted + "/") or wanted in part.split("/"):
            return True
    return False


def resolve_layers(wanted: tuple[str, ...], sites) -> tuple:
    """The ops (tflite_selective.OpSite) that the user's layer names mean; a name that matches nothing is an error that
    lists the layers there are, never a silent no-op."""
    found = []
    for name in wanted:
        matches = [site for site in sites if _names_layer(name, site.output)]
        if not matches:
            known = ", ".join(dict.fromkeys(layer_name(site.output) for site in sites if site.output))
            raise UsageError(f"--keep-float {name}: the model has no such layer. Its layers: {known}.")
        found.extend(site for site in matches if site not in found)
    return tuple(found)
