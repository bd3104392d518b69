"""Which reader reads a calibration source (an image folder, a .npz/.npy, a .tfrecord, a Python iterable), the
model's own data, or synthetic inputs: each ends in a CalibrationSet (calibration/sets.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from edgezoo.calibration.sets import (RESIZE_METHODS, SYNTHETIC_BANNER, CalibrationSet, CalibrationSettings,  # noqa: F401 (the set types, for callers of the dispatcher)
                                      build_set, check_arrays, match_inputs, split)
from edgezoo.errors import CalibrationDataError
from edgezoo.paths import user_path


# --- readers -------------------------------------------------------------------------------------


def _read_numpy(path: Path, model, settings: CalibrationSettings) -> CalibrationSet:
    from edgezoo.calibration.numpy_files import read_arrays

    arrays = read_arrays(path)  # headers checked before NumPy allocates; pickles refused
    if not arrays:
        raise CalibrationDataError(f"calibration file '{path}' holds no arrays.")
    return build_set(arrays, model, f"calibration file '{path}'", settings, details={"reader": "numpy", "path": str(path)})


def _read_images(path: Path, model, settings: CalibrationSettings) -> CalibrationSet:
    from edgezoo.calibration.images import read_image_folder

    return read_image_folder(path, model, settings)


def _read_tfrecord(path: Path, model, settings: CalibrationSettings) -> CalibrationSet:
    from edgezoo.calibration.tfrecord import read_tfrecord

    return read_tfrecord(path, model, settings)


# File suffix -> reader; a folder is read as images. A new file kind: one reader plus one entry here.
FILE_READERS = {
    ".npy": _read_numpy,
    ".npz": _read_numpy,
    ".tfrecord": _read_tfrecord,
    ".tfrecords": _read_tfrecord,
    ".tfrec": _read_tfrecord,
}


def _file_kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"] and len(suffixes) > 1:
        return suffixes[-2]  # data.tfrecord.gz: a compressed TFRecord
    return suffixes[-1] if suffixes else ""


def load_calibration(source, model, settings: CalibrationSettings | None = None) -> CalibrationSet:
    """User data as a CalibrationSet: a folder of images, a .npy/.npz/TFRecord file, a Python iterable, or a CalibrationSet."""
    settings = settings or CalibrationSettings()
    if isinstance(source, CalibrationSet):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = user_path(source)
        if not path.exists():
            raise CalibrationDataError(
                f"calibration data '{path}' does not exist. Give a folder of images, or a .npy, .npz or .tfrecord file."
            )
        if path.is_dir():
            return _read_images(path, model, settings)
        reader = FILE_READERS.get(_file_kind(path))
        if reader is None:
            raise CalibrationDataError(
                f"calibration file '{path}' has an unsupported type; give a folder of images or one of: {', '.join(FILE_READERS)}."
            )
        return reader(path, model, settings)
    if isinstance(source, Iterable):
        from edgezoo.calibration.iterable import read_iterable

        return read_iterable(source, model, settings)
    raise CalibrationDataError(
        f"calibration data of type {type(source).__name__} is not supported; give a path, an iterable of samples, or a CalibrationSet."
    )


def from_model_data(model) -> CalibrationSet:
    data = model.load_data()
    where = f"bundled data of {model.name}"
    return CalibrationSet(
        check_arrays(match_inputs(data.calibration, model, where)[0], model, where),
        check_arrays(match_inputs(data.heldout, model, where)[0], model, where),
        heldout_labels=data.heldout_labels,
        origin="bundled",
        details={"reader": "bundled", "model": model.name},
    )


def synthetic(model, *, seed: int = 0, count: int = 64, shapes: dict[str, tuple[int, ...]] | None = None,
              dynamic_size: int | None = None) -> CalibrationSet:
    """Random inputs, only when the user gave none: quantisation ranges and parity from them are guesses.

    `shapes` (--input-shape) gives the sizes of dynamic dimensions; those still unknown get `dynamic_size` (a size the
    original was seen to run at, zoo.reference.dynamic_size_that_runs) or else 1, said in the warning.
    """
    size = dynamic_size or 1
    message = (
        f"{SYNTHETIC_BANNER}: no calibration data was given for {model.name}, so edgezoo uses {count} random samples. "
        "Quantisation ranges and parity figures from random data can be far from real use; pass --calibration "
        "with real inputs (a folder of images, .npz, .npy or .tfrecord)."
    )
    warnings = [message]
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in model.inputs:
        given = (shapes or {}).get(spec.name)
        shape = tuple(given[1:]) if given else tuple(size if d is None else d for d in spec.shape[1:])
        if not given and None in spec.shape[1:]:
            shown = ", ".join("?" if d is None else str(d) for d in spec.shape)
            why = " (the smallest size tried at which the original runs)" if dynamic_size else ""
            warnings.append(f"input '{spec.name}' has dynamic dimensions [{shown}]; the random samples give them size {size}{why} "
                            f"({[count, *shape]}). Fix the size with --input-shape {spec.name}=1,... or give --calibration data.")
        if np.dtype(spec.dtype).kind == "f":
            arrays[spec.name] = rng.standard_normal((count, *shape)).astype(spec.dtype)
        else:
            arrays[spec.name] = rng.integers(0, 2, (count, *shape)).astype(spec.dtype)
    calibration, heldout = split(arrays, CalibrationSettings(seed=seed, max_samples=count))
    return CalibrationSet(calibration, heldout, origin="synthetic", warnings=tuple(warnings), details={"reader": "synthetic", "seed": seed})
