"""Per-output comparison metrics, in one registry: adding a metric touches only this file.

Each metric takes the reference and the candidate outputs of one output tensor ([N, ...] arrays)
and returns a float, or None where it does not apply (top-k on a non-classifier).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# A metric's second element says whether it applies only to classifier outputs.
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {}

SNR_CAP_DB = 300.0  # identical outputs: infinite SNR, capped so the report stays valid JSON


def metric(name: str, classifier_only: bool = False):
    def decorator(fn):
        METRICS[name] = (fn, classifier_only)
        return fn

    return decorator


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
    """Mean over samples of the cosine similarity between the flattened outputs."""
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = out.reshape(len(out), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sample = np.where(norms > 0, np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1), 0.0)
    return float(np.mean(np.where(same, 1.0, per_sample)))


@metric("snr_db")
def snr_db(ref, out):
    noise = np.sum(_diff(ref, out) ** 2)
    signal = np.sum(ref.astype(np.float64) ** 2)
    if noise == 0:
        return SNR_CAP_DB
    if signal == 0:
        return -SNR_CAP_DB
    return float(min(SNR_CAP_DB, 10 * np.log10(signal / noise)))


@metric("top1_agreement", classifier_only=True)
def top1_agreement(ref, out):
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1)))


def compare(ref: np.ndarray, out: np.ndarray, classifier: bool) -> dict[str, float]:
    return {name: fn(ref, out) for name, (fn, classifier_only) in METRICS.items() if classifier or not classifier_only}
