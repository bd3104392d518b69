"""What a job is and what it gives back, and the files that carry them between the parent and a worker process.

What every job of one model shares (the model, its data, the original's outputs on the held-out inputs, the pruning
result) is prepared once in the parent and written once (`Prepared`); each job names that file. The files are pickles
the parent writes for its own workers (never user data: edgezoo never unpickles what a user gives it).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Prepared:
    """Shared by every job of one model: loaded, (pruned), data prepared and the reference run, once."""

    model: object  # LoadedModel (without its load_data callable: the data is here already)
    data: object  # CalibrationSet
    reference: object  # the original's outputs on data.heldout, as its task runs them (tensors; a DetectorReference)
    pruning: object = None  # PruneResult when the run pruned the model


@dataclass(frozen=True)
class Job:
    """One model x one target (x one option variant): published as out_dir/<model>/<folder>/."""

    name: str  # how reports and progress name it: "<model>/<folder>"
    folder: str  # the target folder's name (the profile's name, or "<profile>-<variant>")
    profile: object  # TargetProfile
    options: object  # ConvertOptions of this job (its quantisation and fallback settings; data fields are in Prepared)
    prepared: Path  # the Prepared file
    out_dir: Path
    model_name: str
    force: bool
    expected_peak: int  # bytes, for admission (jobs/memory.py)
    key: str | None = None  # the content key (build): written to the folder as KEY_FILE once it is published
    saved_model_dirs: tuple[Path, ...] = ()  # the SavedModels Prepared refers to: shipped to executors on other hosts
    work: str | None = None  # None: the target's whole work (target_run); else "PATH.py:function" run instead (jobs/worker.py)


@dataclass(frozen=True)
class JobOutcome:
    job_name: str
    result: object  # TargetResult (a failed job's TargetFailure inside it)
    warnings: tuple[str, ...] = ()
    seconds: float | None = None
    peak_rss_bytes: int | None = None  # the worker's peak resident memory (its own, or a child's if larger), when it finished
    worker: str | None = None  # where it ran: "pid 1234" or a Ray node id
    notes: tuple[str, ...] = field(default_factory=tuple)  # what the executor did about it (stale staging removed...)


def strip_callables(model):
    """A LoadedModel that pickles: its lazy data loader dropped (the data travels in Prepared) unless it pickles itself
    (a bundled model's, which tasks read for ground truth such as a detector's boxes)."""
    loader = getattr(model, "load_data", None)
    if loader is None:
        return model
    try:
        pickle.dumps(loader)
        return model
    except (pickle.PicklingError, TypeError, AttributeError):  # a lambda or a closure over unpicklable state
        return dataclasses.replace(model, load_data=None)


def prepared_for(model, data, reference, pruning=None) -> Prepared:
    if pruning is not None:
        pruning = dataclasses.replace(pruning, model=strip_callables(pruning.model), original=strip_callables(pruning.original))
    return Prepared(strip_callables(model), data, reference, pruning)


def write(obj, path: Path) -> Path:
    """Pickle obj to path atomically (a reader never sees half a file)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(obj, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read(path: Path):
    with open(path, "rb") as stream:
        return pickle.load(stream)  # noqa: S301 -- written by this run's parent for its own workers


def portable(result):
    """A TargetResult that pickles whatever its error held: the error rebuilt as its own class from its message
    (exception chains can hold objects of the libraries that raised them)."""
    failure = getattr(result, "failure", None)
    if failure is None:
        return result
    error = failure.error
    try:
        rebuilt = type(error)(str(error))
    except Exception:  # an error class with another constructor: its kind by exit code
        from edgezoo.errors import ConversionError

        rebuilt = ConversionError(str(error))
    return dataclasses.replace(result, failure=dataclasses.replace(failure, error=rebuilt))
