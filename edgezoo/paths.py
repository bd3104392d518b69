"""Paths the user typed (sources, profiles, data, cache and mirror folders), read one way everywhere."""

from __future__ import annotations

import os
from pathlib import Path

from edgezoo.errors import UsageError


NAME_MAX = 255  # bytes in one file name (Linux, macOS); a longer one makes stat() fail with ENAMETOOLONG, not "missing"


def user_path(text: str | os.PathLike) -> Path:
    """`text` as a Path with `~` expanded. `~name` of a user this machine does not know, and a file name no file system
    allows (longer than NAME_MAX bytes), are usage errors (exit 2), not pathlib's RuntimeError or OSError."""
    try:
        path = Path(text).expanduser()
    except (RuntimeError, ValueError) as exc:  # ValueError: a NUL byte in `~name` (the user database is asked for it)
        raise UsageError(f"cannot expand the path '{text}': {str(exc).rstrip('.')}. Give the path in full.") from None
    for part in path.parts:
        try:
            too_long = len(os.fsencode(part)) > NAME_MAX
        except UnicodeError:  # not representable as a file name at all: every check of it answers "missing"
            continue
        if too_long:
            raise UsageError(f"the path '{str(text)[:60]}...' holds a name longer than {NAME_MAX} bytes, which no file can have.")
    return path
