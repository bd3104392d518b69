"""Output folders written atomically: each target is built in a hidden sibling folder and renamed
into place, so an interrupted or failed run leaves nothing half-written, and existing output is
replaced only when asked (--force).

Each staging folder holds OWNER_FILE, the pid (and start time and host) of the process that made it. A
process killed outright (SIGKILL, a power cut) cannot remove its staging folder; the next run in the same
model folder finds it, sees that its owner is gone, removes it and says so. The `.old-PID` copy that
`publish` keeps for a moment while it swaps a replaced folder is put back if its owner died mid-swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from edgezoo import _processes
from edgezoo.errors import OutputExistsError, OutputNotWritableError

OWNER_FILE = ".edgezoo-owner"  # in each staging folder: the process that is writing it
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:partial-.+|old-(?P<pid>\d+))$")


# A process killed between making its staging folder and writing OWNER_FILE into it leaves an empty folder with no
# owner; it holds nothing, so once it is older than any such gap can be it is removed.
_EMPTY_STAGING_GRACE_SECONDS = 60.0


def _abandoned_empty(folder: Path) -> bool:
    import time

    try:
        return not any(folder.iterdir()) and time.time() - folder.stat().st_mtime > _EMPTY_STAGING_GRACE_SECONDS
    except OSError:
        return False


def safe_name(name: str) -> str:
    """A folder name from a model or target name (`keras:MobileNetV2` -> `keras_MobileNetV2`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


class OutputTree:
    """`root/<model>/<target>/` folders for one run."""

    def __init__(self, root: Path, model_name: str, force: bool):
        self.root = root
        self.model_dir = root / safe_name(model_name)
        self.force = force
        self._created: list[Path] = []  # folders this run made, removed again if nothing lands in them

    def final_dir(self, target: str) -> Path:
        return self.model_dir / safe_name(target)

    def check(self, targets: list[str]) -> list[str]:
        """Fail before any work if an output is already there or the folder cannot be written. Removes staging folders
        that dead processes left (remove_stale) and returns what it says about them, for the caller to show."""
        notes = self.remove_stale()
        for target in targets:
            final = self.final_dir(target)
            if final.exists() and not self.force:
                raise OutputExistsError(f"output folder {final} already exists; pass --force to replace it, or choose another --out.")
        try:
            missing = [f for f in (self.model_dir, *self.model_dir.parents) if not f.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                self._created.append(folder)
            with tempfile.TemporaryFile(dir=self.model_dir):
                pass
        except OSError as exc:
            self.discard_empty()
            raise OutputNotWritableError(
                f"cannot write to the output folder {self.root}: {exc.strerror or exc}. Choose a writable --out folder."
            ) from exc
        return notes

    def remove_stale(self) -> list[str]:
        """Staging folders in model_dir whose owning process is gone: removed (or, for a replaced folder, put back)."""
        notes = []
        for folder in sorted(self.model_dir.glob(".*")) if self.model_dir.is_dir() else []:
            match = _STAGING.match(folder.name)
            if not match or not folder.is_dir():
                continue
            if match["pid"] is not None:  # publish's copy of a folder being replaced: its pid is in its name
                owner = {"pid": int(match["pid"]), "start_time": None, "host": _processes.identity()["host"]}
            else:
                try:
                    owner = json.loads((folder / OWNER_FILE).read_text())
                except (OSError, ValueError):
                    if _abandoned_empty(folder):
                        folder.rmdir()
                        notes.append(f"removed {folder}, an empty staging folder whose process stopped before writing to it")
                    continue  # otherwise, with no owner recorded, not ours to judge
                if not isinstance(owner, dict):
                    continue
            if _processes.is_alive(owner) is not False:
                continue  # still running, or on another host
            final = self.model_dir / match["name"]
            if match["pid"] is not None and not final.exists():
                folder.rename(final)
                notes.append(f"put back {final}, which process {owner['pid']} was replacing when it stopped")
            else:
                shutil.rmtree(folder, ignore_errors=True)
                notes.append(f"removed {folder}, a staging folder left by process {owner['pid']}, which is no longer running")
        return notes

    @contextlib.contextmanager
    def staging(self, target: str):
        """A hidden temporary sibling of the final folder; removed if the block fails."""
        staging = Path(tempfile.mkdtemp(prefix=f".{safe_name(target)}.partial-", dir=self.model_dir))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the published folder should be like any other the user makes
        try:
            (staging / OWNER_FILE).write_text(json.dumps(_processes.identity()))
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def publish(self, staging: Path, target: str) -> Path:
        final = self.final_dir(target)
        old = None
        if final.exists():
            if not self.force:
                shutil.rmtree(staging, ignore_errors=True)
                raise OutputExistsError(f"output folder {final} appeared during the run; pass --force to replace it.")
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
        try:
            (staging / OWNER_FILE).unlink(missing_ok=True)
            staging.rename(final)
        except BaseException:  # an interrupt between the two renames: the user's earlier output goes back in place
            if old is not None and not final.exists():
                old.rename(final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._created.clear()  # something landed: the folders are now the user's output
        return final

    def discard_empty(self) -> None:
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        self._created.clear()
