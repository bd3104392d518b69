"""Run a command in its own process and measure its wall time and peak resident memory (RSS)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float
    returncode: int


def measure(command: list[str], *, env: dict | None = None, cwd: str | None = None, log_path: str | None = None) -> Measurement:
    """wait4 gives this child's own rusage, so each process's peak memory is measured separately."""
    with open(log_path or os.devnull, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(seconds, usage.ru_maxrss / 1024, process.returncode)
