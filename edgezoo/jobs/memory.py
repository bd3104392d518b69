"""Memory figures for admitting jobs: sizes as people write them, what the machine has free, and a job's expected peak."""

from __future__ import annotations

import re
from pathlib import Path

from edgezoo.errors import UsageError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)

# A job's peak resident memory, estimated before it runs: a worker process with TensorFlow and the converters imported,
# plus a multiple of the canonical SavedModel's size (the converter's graph copies, the runtime's buffers, the reference
# outputs). Measured on this machine (bench/matrix.py, docs/scale.md): digits-cnn (0.3 MB SavedModel) jobs peak at 0.95-1.15 GB, TensorFlow and the converters imported.
WORKER_BASE_BYTES = 1000 << 20
PER_MODEL_BYTE = 60


def parse_size(text: str | int, flag: str = "--max-memory") -> int:
    """`8G`, `512M`, `1.5GiB` or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise UsageError(f"{flag} takes a size such as 8G, 512M or a number of bytes, got '{text}'.")
        value = int(float(match[1]) * _UNITS[match[2].lower()])
    if value <= 0:
        raise UsageError(f"{flag} must be more than 0 bytes, got '{text}'.")
    return value


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be used without swapping), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def expected_peak(saved_model_dir: Path) -> int:
    return WORKER_BASE_BYTES + PER_MODEL_BYTE * folder_bytes(saved_model_dir)


def describe(count: int) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):.0f} MiB"
