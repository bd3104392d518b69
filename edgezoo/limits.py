"""The limits edgezoo keeps when it reads files and servers it has no reason to trust (docs/security.md).

Each limit has a default and an environment variable that changes it, read when the limit is checked, so a
machine (or a test) can set it for one run. A limit that is reached ends the run with an error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgezoo.errors import UsageError


@dataclass(frozen=True)
class Limit:
    env: str  # the environment variable that overrides the default
    default: float
    unit: str  # "bytes", "files" or "seconds"
    doc: str

    def value(self) -> float:
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = float(text) if self.unit == "seconds" else int(text)
        except ValueError:
            raise UsageError(f"{self.env}={text!r} is not a number of {self.unit}.") from None
        if value <= 0:
            raise UsageError(f"{self.env} must be a positive number of {self.unit}, not {text}.")
        return value

    def describe(self) -> str:
        return f"{self.env} (default {_shown(self.default, self.unit)})"


def _shown(value: float, unit: str) -> str:
    if unit == "bytes" and value >= 1 << 30:
        return f"{value / (1 << 30):g} GiB"
    if unit == "bytes" and value >= 1 << 20:
        return f"{value / (1 << 20):g} MiB"
    return f"{value:g} {unit}"


MAX_ARCHIVE_BYTES = Limit("EDGEZOO_MAX_ARCHIVE_BYTES", 16 << 30, "bytes",
                          "what an archive (a hub module's .tar.gz) may extract to, in total")
MAX_ARCHIVE_MEMBERS = Limit("EDGEZOO_MAX_ARCHIVE_MEMBERS", 200_000, "files", "how many files and folders an archive may hold")
MAX_DATA_BYTES = Limit("EDGEZOO_MAX_DATA_BYTES", 8 << 30, "bytes",
                       "what the arrays of a .npy/.npz data file may take in memory, decompressed")
MAX_JSON_BYTES = Limit("EDGEZOO_MAX_JSON_BYTES", 256 << 20, "bytes", "the size of a model's JSON file (a TF.js model.json, a Keras config)")
DOWNLOAD_TIMEOUT = Limit("EDGEZOO_DOWNLOAD_TIMEOUT", 60.0, "seconds",
                         "how long a download waits for a server to answer or send its next bytes (a stalled server)")
LOCK_TIMEOUT = Limit("EDGEZOO_LOCK_TIMEOUT", 1800.0, "seconds",
                     "how long a process waits for another edgezoo process that is downloading the same file")

ALL = (MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, MAX_DATA_BYTES, MAX_JSON_BYTES, DOWNLOAD_TIMEOUT, LOCK_TIMEOUT)
