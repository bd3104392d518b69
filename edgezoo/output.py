"""Output folders written atomically: each target is built in a hidden sibling folder and renamed
into place, so an interrupted or failed run leaves nothing half-written, and existing output is
replaced only when asked (--force).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from edgezoo.errors import OutputExistsError, OutputNotWritableError


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

    def check(self, targets: list[str]) -> None:
        """Fail before any work if an output is already there or the folder cannot be written."""
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

    @contextlib.contextmanager
    def staging(self, target: str):
        """A hidden temporary sibling of the final folder; removed if the block fails."""
        staging = Path(tempfile.mkdtemp(prefix=f".{safe_name(target)}.partial-", dir=self.model_dir))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the published folder should be like any other the user makes
        try:
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
        staging.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._created.clear()  # something landed: the folders are now the user's output
        return final

    def discard_empty(self) -> None:
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        self._created.clear()
