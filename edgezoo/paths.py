"""Paths the user typed (sources, profiles, data, cache and mirror folders), read one way everywhere."""

from __future__ import annotations

import os
from pathlib import Path

from edgezoo.errors import UsageError


def user_path(text: str | os.PathLike) -> Path:
    """`text` as a Path with `~` expanded; `~name` of a user this machine does not know is a usage error (exit 2),
    not pathlib's RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise UsageError(f"cannot expand the path '{text}': {exc} Give the path in full.") from None
