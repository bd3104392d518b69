"""Process-wide scratch folders, removed when the process exits."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_ROOT: Path | None = None


def scratch_dir(prefix: str) -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="edgezoo-"))
        atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_ROOT))
