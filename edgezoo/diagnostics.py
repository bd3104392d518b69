"""Diagnostics: what is measured about an artifact after it is made (error tracing, calibration drift, per-layer
effect, the weights-only error, advice, the footprint estimate, where each op runs, the HTML page and its plots).

A diagnostic explains a verdict; it never makes one. When one cannot run, the target still publishes its artifact with
its real verdict and exit code, and the report says which diagnostic is unavailable and why (`diagnostics.unavailable`
in report.json, a CLI line). Exit 4 stays for the artifact itself: its conversion, or its runtime in the parity check.

One mechanism: `Diagnostics.run(name, fn, default)` returns fn() or, when it raises, records the failure and returns
the default. Nothing else in the pipeline catches a diagnostic's errors. What only explains the finished artifact
(placement, overlays, footprint, HTML) also runs under a time limit (`seconds`): one that would never end (a loop on
a graph nobody foresaw) is stopped and reported unavailable like any other failure. The quantisation measurements have
none: the float fallback's mixes are built on them, and on a large model they take long for good reasons.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
import traceback
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from edgezoo import _tf

T = TypeVar("T")
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # as target_run.NO_ROOM: a full disk is the output's failure, not a diagnostic's

# The names reports use, one per diagnostic (tests inject a failure into each).
TRACE = "error trace"
WEIGHTS = "weights-only error"
DRIFT = "calibration drift"
LAYERS = "per-layer effect"
SOLO = "per-layer effect alone in int8"
ADVICE = "advice"
FOOTPRINT = "footprint estimate"
HTML = "HTML report"
PLACEMENT = "op placement"  # which backend takes each op (edgezoo/formats/placement.py)
EXPLORER = "Model Explorer overlays"  # node-data files beside the artifact (edgezoo/reports/explorer.py)
LATENCY = "per-op latency"  # ONNX Runtime's profiler on one sample, for the explorer overlay (edgezoo/formats/onnx/explorer.py)

EXPLAIN_SECONDS = 300.0  # the time limit of what explains a finished artifact (MobileNetV2's TF.js placement: about 2 s)


class DiagnosticTimeout(Exception):
    """A diagnostic ran past its time limit and was stopped."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """SIGALRM after `seconds` raises DiagnosticTimeout in the block. Only in the main thread (where signals are handled)
    and when no other timer runs; elsewhere the block runs without a limit."""
    if not seconds or threading.current_thread() is not threading.main_thread() or signal.getitimer(signal.ITIMER_REAL)[0]:
        yield
        return

    def expire(signum, frame):
        raise DiagnosticTimeout(f"stopped after {seconds:g} s, its time limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def unavailable(error: str) -> dict:
    """A report section whose diagnostic could not run."""
    return {"status": "unavailable", "error": error}


@dataclass
class Diagnostics:
    """The diagnostics of one target that could not run, by name -> the error (first line, with its type)."""

    warn: Callable[[str], None] | None = None
    failed: dict[str, str] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], T], default: T = None, seconds: float | None = None) -> T:
        try:
            with time_limit(seconds):
                return fn()
        except OSError as exc:
            if exc.errno in NO_ROOM:  # the output folder is full: nothing can be published, the pipeline says so
                raise
            return self._failed(name, exc, default)
        except Exception as exc:  # noqa: BLE001 - any failure of a measurement leaves the verdict as it is
            return self._failed(name, exc, default)

    def _failed(self, name: str, exc: Exception, default):
        if _tf.is_verbose():
            traceback.print_exc()
        text = str(exc).strip().splitlines()
        self.failed.setdefault(name, f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))
        if self.warn is not None:
            self.warn(f"{name} unavailable ({self.failed[name]}); the verdict and the artifact stand.")
        return default

    def to_json(self) -> dict:
        return {"unavailable": [{"name": name, "error": error} for name, error in self.failed.items()]}


def report_section(report: dict, diagnostics: Diagnostics) -> None:
    """Adds (or extends) the report's `diagnostics` section; nothing when every diagnostic ran."""
    if not diagnostics.failed:
        return
    known = {row["name"]: row for row in report.get("diagnostics", {}).get("unavailable", [])}
    for row in diagnostics.to_json()["unavailable"]:
        known.setdefault(row["name"], row)
    report["diagnostics"] = {"unavailable": list(known.values())}


def summary_lines(report: dict) -> list[str]:
    return [f"  diagnostic unavailable: {row['name']}: {row['error']}" for row in report.get("diagnostics", {}).get("unavailable", [])]
