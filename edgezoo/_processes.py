"""Which processes are alive, and this process' children: what signal handling and stale-folder cleanup need.

Linux keeps both in /proc. A pid alone can be reused, so a process is named by its pid and its start time (field 22
of /proc/PID/stat); where /proc is missing, a pid that answers `kill(pid, 0)` counts as alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

PROC = Path("/proc")


def start_time(pid: int) -> int | None:
    """The process' start time in clock ticks since boot, or None without /proc (or without that process)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after the command name start at field 3


def identity() -> dict:
    """This process, as a stale-folder check on this or another run will look for it."""
    return {"pid": os.getpid(), "start_time": start_time(os.getpid()), "host": socket.gethostname()}


def is_alive(owner: dict) -> bool | None:
    """Whether the process an identity() names still runs; None when it ran on another host (it cannot be told)."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if PROC.is_dir():
        started = start_time(pid)
        return started is not None and (owner.get("start_time") is None or started == owner["start_time"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def descendants(pid: int | None = None) -> list[int]:
    """Every process below `pid` (default: this one), children first; empty without /proc."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, list[int]] = {}
    for entry in PROC.glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, stack = [], list(parents.get(root, []))
    while stack:
        child = stack.pop(0)
        found.append(child)
        stack.extend(parents.get(child, []))
    return found


def stop_descendants(grace_seconds: float = 3.0) -> list[int]:
    """SIGTERM every process below this one (the TFLM child, Node, the browser and its helpers), then SIGKILL those
    still there after the grace period. Returns the pids that were found."""
    found = descendants()
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_running(pid) for pid in found):
        time.sleep(0.05)
    for pid in found:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie child of ours is gone but not yet reaped)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
