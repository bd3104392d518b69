"""Run a command in its own process and measure its wall time and peak resident memory (RSS).

The command is started by a small launcher process (this file run as a script), because on Linux a
child's ru_maxrss also carries its parent's peak from before exec: measured straight from the bench
driver, which has TensorFlow loaded, every child would show the driver's 1.5 GB.

    python bench/measure.py LOG_PATH COMMAND...   -> {"seconds": .., "peak_rss_mb": .., "returncode": ..} on stdout
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_mb: float
    returncode: int


def measure(command: list[str], *, log_path: str | None = None) -> Measurement:
    launcher = [sys.executable, os.path.abspath(__file__), log_path or os.devnull, *command]
    done = subprocess.run(launcher, capture_output=True, text=True, check=True)
    return Measurement(**json.loads(done.stdout))


def measure_each(commands: dict[str, list[str]], log_dir, prefix: str, what: str) -> dict[str, Measurement]:
    """Each command in its own process, one after the other, its output in LOG_DIR/PREFIX-NAME.log; a command that fails
    stops the bench with its name and where its log is (`what` says which measurement it belonged to)."""
    measured = {name: measure(command, log_path=os.path.join(str(log_dir), f"{prefix}-{name}.log")) for name, command in commands.items()}
    failed = [name for name, m in measured.items() if m.returncode != 0]
    if failed:
        raise SystemExit(f"{what}: {', '.join(failed)} failed; see {log_dir}")
    return measured


def _launch(log_path: str, command: list[str]) -> dict:
    """wait4 gives this child's own rusage; the launcher itself is small, so its pre-exec share is negligible."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "returncode": os.waitstatus_to_exitcode(status)}


if __name__ == "__main__":
    print(json.dumps(_launch(sys.argv[1], sys.argv[2:])))
