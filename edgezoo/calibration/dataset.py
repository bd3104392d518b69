"""The CalibrationSet: model inputs by name, split into calibration samples and held-out validation samples.

Every reader (arrays, image folders, TFRecord files, Python iterables) ends in `build_set`, which
checks the data against the model's signature by input name, samples it deterministically and
keeps a held-out split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edgezoo.errors import CalibrationDataError, UsageError
from edgezoo.paths import user_path

# A value range has settled when its min and max moved by at most this share of the range over the last tenth of the samples.
SETTLED_SHARE = 0.01
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area")
SYNTHETIC_BANNER = "SYNTHETIC CALIBRATION DATA"


@dataclass(frozen=True)
class CalibrationSettings:
    """How user data becomes a CalibrationSet: sampling, the held-out split, image resizing, TFRecord features."""

    seed: int = 0
    max_samples: int = 500  # calibration samples kept
    heldout_fraction: float = 0.2  # share of the samples kept apart as validation inputs
    max_heldout: int = 200
    resize: str = "bilinear"  # how images are resized to the model's input size
    features: tuple[tuple[str, str], ...] = ()  # TFRecord: (model input name, feature key); default key: the input's name

    def __post_init__(self):
        if isinstance(self.features, dict):
            object.__setattr__(self, "features", tuple(self.features.items()))
        object.__setattr__(self, "features", tuple((str(i), str(k)) for i, k in self.features))
        if self.max_samples < 1:
            raise UsageError("the number of calibration samples must be at least 1.")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise UsageError(f"the held-out fraction must be between 0 and 1 (got {self.heldout_fraction}).")
        if self.max_heldout < 1:
            raise UsageError("the number of held-out samples must be at least 1.")
        if self.resize not in RESIZE_METHODS:
            raise UsageError(f"unknown resize method '{self.resize}'; use one of {', '.join(RESIZE_METHODS)}.")

    def split_sizes(self, count: int) -> tuple[int, int]:
        """(calibration, held-out) sample counts out of `count` samples."""
        if count < 2:
            return count, 0
        heldout = min(self.max_heldout, max(1, int(round(count * self.heldout_fraction))))
        return min(self.max_samples, count - heldout), heldout

    @property
    def samples_wanted(self) -> int:
        """The fewest samples that fill both the calibration set and the held-out split: readers stop there."""
        wanted = self.max_samples + self.max_heldout
        while wanted > self.max_samples + 1 and self.split_sizes(wanted - 1)[0] >= self.max_samples:
            wanted -= 1
        return wanted

    def feature_for(self, input_name: str) -> str:
        return dict(self.features).get(input_name, input_name)


@dataclass(frozen=True)
class CalibrationSet:
    calibration: dict[str, np.ndarray]  # input name -> [N, ...] model-ready arrays, in the order the converter sees them
    heldout: dict[str, np.ndarray]  # inputs used to compare the artifact with the original
    heldout_labels: np.ndarray | None = None
    origin: str = "user"  # "user", "bundled", or "synthetic"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    details: dict = field(default_factory=dict)  # where the data came from: reader, path, files skipped, seed

    @property
    def num_calibration(self) -> int:
        return len(next(iter(self.calibration.values())))

    @property
    def num_heldout(self) -> int:
        return len(next(iter(self.heldout.values())))

    @property
    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each input's sample shape (batch left out) in data the user gave; none for synthetic data, whose shape is a guess."""
        if self.origin == "synthetic":
            return {}
        return {name: tuple(array.shape[1:]) for name, array in self.calibration.items()}

    def representative_samples(self):
        """One sample at a time, batch of one, as TFLite's representative dataset wants."""
        for index in range(self.num_calibration):
            yield {name: array[index : index + 1] for name, array in self.calibration.items()}

    def statistics(self) -> dict:
        return {
            "origin": self.origin,
            "synthetic": self.origin == "synthetic",
            "num_calibration": self.num_calibration,
            "num_heldout": self.num_heldout,
            "inputs": {name: input_statistics(array) for name, array in self.calibration.items()},
            "source": self.details,
            "warnings": list(self.warnings),
        }


def input_statistics(array: np.ndarray) -> dict:
    """count, min, max, mean, and how much the running min/max still moved over the last tenth of the samples."""
    flat = array.reshape(len(array), -1).astype(np.float64)
    stats = {"count": int(len(array)), "min": float(flat.min()), "max": float(flat.max()), "mean": float(flat.mean())}
    return {**stats, **range_settling(flat)}


def range_settling(flat: np.ndarray) -> dict:
    """Whether the value range had settled: the movement of the running min and max over the last tenth, as a share of the range."""
    count = len(flat)
    if count < 10:
        return {"range_change_last_tenth": None, "range_settled": None}
    running_min = np.minimum.accumulate(flat.min(axis=1))
    running_max = np.maximum.accumulate(flat.max(axis=1))
    before = count - count // 10 - 1  # the last sample before the final tenth
    span = running_max[-1] - running_min[-1]
    moved = (running_min[before] - running_min[-1]) + (running_max[-1] - running_max[before])
    share = float(moved / span) if span > 0 else 0.0
    return {"range_change_last_tenth": share, "range_settled": share <= SETTLED_SHARE}


def _settling_warnings(calibration: dict[str, np.ndarray]) -> list[str]:
    found = []
    for name, array in calibration.items():
        settling = range_settling(array.reshape(len(array), -1))
        if settling["range_settled"] is None:
            found.append(f"only {len(array)} calibration samples for input '{name}': too few to tell whether its value range had settled.")
        elif not settling["range_settled"]:
            found.append(
                f"the value range of input '{name}' still moved by {100 * settling['range_change_last_tenth']:.1f}% over the last "
                "tenth of the calibration samples: quantisation ranges may be too narrow. Give more samples."
            )
    return found


# --- matching data to the model's signature --------------------------------------------------------


def match_inputs(arrays: dict[str, np.ndarray] | list[np.ndarray], model, where: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Name the arrays after the model's inputs; returns the named arrays and notes about the matching.

    Named arrays match by name. Unnamed ones (a list, `np.savez`'s arr_0, arr_1...) match the model's inputs
    in signature order, which is sorted by name. A lone array feeds a lone input whatever its name.
    """
    expected = [spec.name for spec in model.inputs]
    notes: list[str] = []
    if isinstance(arrays, dict) and set(expected) <= set(arrays):
        extra = sorted(set(arrays) - set(expected))
        if extra:
            notes.append(f"{where}: ignored array(s) {', '.join(extra)}, which name no model input ({', '.join(expected)}).")
        return {name: arrays[name] for name in expected}, notes
    positional = list(arrays.values()) if isinstance(arrays, dict) else list(arrays)
    unnamed = not isinstance(arrays, dict) or all(key == f"arr_{i}" for i, key in enumerate(arrays))
    if len(positional) == len(expected) and (unnamed or len(expected) == 1):
        if len(expected) > 1:
            notes.append(f"{where}: unnamed arrays matched to the model inputs by position: {', '.join(expected)}.")
        return dict(zip(expected, positional)), notes
    if isinstance(arrays, dict):
        missing = sorted(set(expected) - set(arrays))
        raise CalibrationDataError(
            f"{where} has no array for the model input(s) {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'none'}). "
            f"Name the arrays after the model's inputs ({', '.join(expected)})."
        )
    raise CalibrationDataError(
        f"{where} gives {len(positional)} unnamed array(s), but the model takes {len(expected)} input(s) "
        f"({', '.join(expected)}). Give one array per input, in that order, or name them."
    )


def check_arrays(arrays: dict[str, np.ndarray], model, where: str) -> dict[str, np.ndarray]:
    """Check each named array's rank, shape, dtype and values against the model input of that name."""
    checked = {}
    for spec in model.inputs:
        array = np.asarray(arrays[spec.name])
        want = tuple(spec.shape[1:])
        shown = f"[N, {', '.join('?' if d is None else str(d) for d in want)}]"
        if array.ndim != len(spec.shape) or any(w is not None and w != got for w, got in zip(want, array.shape[1:])):
            raise CalibrationDataError(
                f"{where}: array '{spec.name}' has shape {tuple(array.shape)}, but the model input '{spec.name}' takes "
                f"{shown} (N samples first). Reshape or resize the data to match."
            )
        if len(array) == 0:
            raise CalibrationDataError(f"{where}: array '{spec.name}' holds no samples.")
        model_kind, data_kind = np.dtype(spec.dtype).kind, array.dtype.kind
        if model_kind == "f" and data_kind != "f":
            raise CalibrationDataError(
                f"{where}: array '{spec.name}' has dtype {array.dtype}, but the model input takes {spec.dtype} values. "
                "Give preprocessed floating-point inputs (apply the model's preprocessing first)."
            )
        if model_kind != "f" and data_kind not in "iub":
            raise CalibrationDataError(f"{where}: array '{spec.name}' has dtype {array.dtype}, but the model input takes {spec.dtype}.")
        if data_kind == "f":
            finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise CalibrationDataError(
                    f"{where}: array '{spec.name}' holds NaN or Inf values in {len(bad)} sample(s) (first: sample {int(bad[0])}). "
                    "Remove or fix those samples."
                )
        checked[spec.name] = array.astype(spec.dtype)
    counts = {name: len(a) for name, a in checked.items()}
    if len(set(counts.values())) != 1:
        raise CalibrationDataError(f"{where}: the inputs have different sample counts ({counts}); give the same number for each.")
    return checked


# --- sampling ------------------------------------------------------------------------------------


def split(arrays: dict[str, np.ndarray], settings: CalibrationSettings):
    """A seeded split into calibration and held-out samples; the same seed gives the same split.

    With a single sample there is nothing to hold out: it serves as both.
    """
    count = len(next(iter(arrays.values())))
    order = np.random.default_rng(settings.seed).permutation(count)
    num_calibration, num_heldout = settings.split_sizes(count)
    heldout_idx = np.sort(order[:num_heldout]) if num_heldout else order[:1]
    calibration_idx = np.sort(order[num_heldout : num_heldout + num_calibration]) if num_heldout else order[:1]
    return (
        {name: a[calibration_idx] for name, a in arrays.items()},
        {name: a[heldout_idx] for name, a in arrays.items()},
    )


def build_set(arrays, model, where: str, settings: CalibrationSettings, *, details: dict, warnings: Iterable[str] = ()) -> CalibrationSet:
    """Match, check, split: the end of every reader."""
    named, notes = match_inputs(arrays, model, where)
    checked = check_arrays(named, model, where)
    calibration, heldout = split(checked, settings)
    found_warnings = [*warnings, *notes, *_settling_warnings(calibration)]
    return CalibrationSet(calibration, heldout, origin="user", warnings=tuple(found_warnings), details={**details, "seed": settings.seed})


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


def synthetic(model, *, seed: int = 0, count: int = 64, shapes: dict[str, tuple[int, ...]] | None = None) -> CalibrationSet:
    """Random inputs, only when the user gave none: quantisation ranges and parity from them are guesses.

    `shapes` (--input-shape) gives the sizes of dynamic dimensions; those still unknown get size 1, said in the warning.
    """
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
        shape = tuple(given[1:]) if given else tuple(1 if d is None else d for d in spec.shape[1:])
        if not given and None in spec.shape[1:]:
            shown = ", ".join("?" if d is None else str(d) for d in spec.shape)
            warnings.append(f"input '{spec.name}' has dynamic dimensions [{shown}]; the random samples give them size 1 "
                            f"({[count, *shape]}). Fix the size with --input-shape {spec.name}=1,... or give --calibration data.")
        if np.dtype(spec.dtype).kind == "f":
            arrays[spec.name] = rng.standard_normal((count, *shape)).astype(spec.dtype)
        else:
            arrays[spec.name] = rng.integers(0, 2, (count, *shape)).astype(spec.dtype)
    calibration, heldout = split(arrays, CalibrationSettings(seed=seed, max_samples=count))
    return CalibrationSet(calibration, heldout, origin="synthetic", warnings=tuple(warnings), details={"reader": "synthetic", "seed": seed})
