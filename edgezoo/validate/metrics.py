"""Per-output comparison metrics, in one registry: adding a metric touches only this file.

Each metric takes the reference and the candidate outputs of one output tensor ([N, ...] arrays)
and returns a float, or None where it does not apply. What applies depends on the output's kind, read
from the reference values themselves (output_kind): every output gets the error metrics; class scores
(a classifier's logits or probabilities, or any softmax) also get top-k agreement; probabilities (every
value in [0, 1], e.g. sigmoid heads and probability maps) get the agreement of their thresholded
decisions. The scale-free metrics (SNR, cosine, relative L2, error over the output's range) mean the same
on every model, which is why the built-in tolerances use them (docs/tolerances.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# Output kinds (output_kind); a metric's second element names the kinds it applies to (None: every output).
CLASS_SCORES, PROBABILITIES, VALUES = "class scores", "probabilities", "values"
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], frozenset[str] | None]] = {}

SNR_CAP_DB = 300.0  # identical outputs: infinite SNR, capped so the report stays valid JSON
DECISION_THRESHOLD = 0.5
# A decision the original takes with less confidence than this (|p - 0.5| < margin) is not one the artifact must
# reproduce: rounding alone may flip it. Probabilities are on a fixed [0, 1] scale, so the margin is too.
DECISION_MARGIN = 0.05
SOFTMAX_SUM_TOLERANCE = 1e-3


def metric(name: str, applies_to: tuple[str, ...] | None = None):
    def decorator(fn):
        METRICS[name] = (fn, frozenset(applies_to) if applies_to else None)
        return fn

    return decorator


def output_kind(ref: np.ndarray, classifier: bool = False) -> str:
    """What an output holds, judged from the original's values: class scores, probabilities, or plain values.

    Class scores: the last axis of a classifier's (batch, classes) output, or any output whose last axis is a
    probability distribution (a softmax). Probabilities: every value within [0, 1] (sigmoid heads, masks).
    """
    ref = np.asarray(ref, np.float64)
    if ref.ndim < 2 or ref.size == 0 or not np.all(np.isfinite(ref)):
        return VALUES
    within_unit = float(ref.min()) >= 0.0 and float(ref.max()) <= 1.0
    if ref.shape[-1] > 1:
        if classifier and ref.ndim == 2:
            return CLASS_SCORES
        if within_unit and np.all(np.abs(ref.sum(axis=-1) - 1.0) < SOFTMAX_SUM_TOLERANCE):
            return CLASS_SCORES
    return PROBABILITIES if within_unit else VALUES


def _diff(ref, out):
    return ref.astype(np.float64) - out.astype(np.float64)


@metric("max_abs_error")
def max_abs_error(ref, out):
    return float(np.max(np.abs(_diff(ref, out))))


@metric("mean_abs_error")
def mean_abs_error(ref, out):
    return float(np.mean(np.abs(_diff(ref, out))))


@metric("rmse")
def rmse(ref, out):
    return float(np.sqrt(np.mean(_diff(ref, out) ** 2)))


@metric("cosine")
def cosine(ref, out):
    """Cosine similarity of each sample's flattened outputs, averaged with each sample's weight ‖ref‖·‖out‖:
    sum <ref_i, out_i> / sum ‖ref_i‖‖out_i‖. A plain mean lets a sample whose output is all but zero (an empty
    mask) count as much as the rest, and its direction is noise; weighted, it counts as little as it weighs.
    Equal to the plain mean where every sample has the same norm (an L2-normalised embedding); 1 for identical outputs."""
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = out.reshape(len(out), -1).astype(np.float64)
    if np.array_equal(a, b):
        return 1.0
    weight = float(np.sum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    return float(np.sum(a * b) / weight) if weight > 0 else 0.0


@metric("snr_db")
def snr_db(ref, out):
    noise = np.sum(_diff(ref, out) ** 2)
    signal = np.sum(ref.astype(np.float64) ** 2)
    if not np.isfinite(noise):
        return float("nan")  # min(cap, nan) would read as a perfect 300 dB
    if noise == 0:
        return SNR_CAP_DB
    if signal == 0:
        return -SNR_CAP_DB
    return float(min(SNR_CAP_DB, 10 * np.log10(signal / noise)))


@metric("psnr_db")
def psnr_db(ref, out):
    """Peak signal-to-noise ratio; the peak is the largest magnitude in the reference output."""
    mse = np.mean(_diff(ref, out) ** 2)
    peak = float(np.max(np.abs(ref.astype(np.float64)))) if ref.size else 0.0
    if mse == 0:
        return SNR_CAP_DB
    if peak == 0:
        return -SNR_CAP_DB
    return float(np.clip(10 * np.log10(peak**2 / mse), -SNR_CAP_DB, SNR_CAP_DB))


@metric("relative_l2_error")
def relative_l2_error(ref, out):
    """Norm of the error over the norm of the reference, over the whole output."""
    error = float(np.linalg.norm(_diff(ref, out).ravel()))
    reference = float(np.linalg.norm(ref.astype(np.float64).ravel()))
    if reference == 0:
        return 0.0 if error == 0 else float("inf")
    return error / reference


NEAR_CONSTANT = 1e-3  # a spread below this share of the output's magnitude is no range to judge errors by


@metric("max_error_over_range")
def max_error_over_range(ref, out):
    """The largest absolute error over the reference's peak-to-peak range: scale-free, and unlike SNR it
    catches a single element gone wrong. A reference that (nearly) does not vary is measured against a floor of
    NEAR_CONSTANT of its magnitude: an untrained classifier's uniform softmax (0.1 everywhere, varying by 1e-8) would
    otherwise fail a float32 artifact whose SNR is 145 dB for an error of 7e-9."""
    error = float(np.max(np.abs(_diff(ref, out)))) if ref.size else 0.0
    spread = float(np.ptp(ref.astype(np.float64))) if ref.size else 0.0
    magnitude = float(np.max(np.abs(ref.astype(np.float64)))) if ref.size else 0.0
    scale = max(spread, NEAR_CONSTANT * magnitude) if spread else magnitude
    if scale == 0:
        return 0.0 if error == 0 else float("inf")
    return error / scale


@metric("decision_agreement", applies_to=(PROBABILITIES,))
def decision_agreement(ref, out):
    """Share of the original's clear decisions (probability at least DECISION_MARGIN away from 0.5) that the
    artifact takes the same way; None when the original takes no clear decision."""
    ref, out = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    clear = np.abs(ref - DECISION_THRESHOLD) >= DECISION_MARGIN
    if not np.any(clear):
        return None
    return float(np.mean((ref[clear] > DECISION_THRESHOLD) == (out[clear] > DECISION_THRESHOLD)))


@metric("top1_agreement", applies_to=(CLASS_SCORES,))
def top1_agreement(ref, out):
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1)))


@metric("top5_agreement", applies_to=(CLASS_SCORES,))
def top5_agreement(ref, out):
    """Share of samples whose best class in the original is among the artifact's five best (top-5 accuracy,
    with the original's prediction as the label); None when there are five classes or fewer."""
    classes = ref.shape[-1]
    if classes <= 5:
        return None
    best = np.argmax(ref.reshape(-1, classes), axis=-1)
    top5 = np.argpartition(-out.reshape(-1, classes).astype(np.float64), 5, axis=-1)[:, :5]
    return float(np.mean(np.any(top5 == best[:, None], axis=-1)))


def compare(ref: np.ndarray, out: np.ndarray, classifier: bool, kind: str | None = None) -> dict[str, float]:
    """Every metric that applies to this output's kind (judged from `ref` unless given)."""
    kind = kind or output_kind(ref, classifier)
    return {name: fn(ref, out) for name, (fn, kinds) in METRICS.items() if kinds is None or kind in kinds}


def error_histogram(ref: np.ndarray, out: np.ndarray, bins: int = 40) -> dict:
    """Counts of the signed element-wise error (artifact minus original), for the report's plots.

    Non-finite errors are counted apart, so one NaN does not hide the shape of the rest.
    """
    error = (out.astype(np.float64) - ref.astype(np.float64)).ravel()
    finite = error[np.isfinite(error)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low == high:  # identical outputs (or one value): a single bin around it
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts], "non_finite": int(error.size - finite.size)}
