"""The CalibrationSet: model inputs by name, split into calibration samples and held-out validation samples.

Every reader (arrays, image folders, TFRecord files, Python iterables; calibration/<reader>.py) ends in `build_set`,
which checks the data against the model's signature by input name, samples it deterministically and keeps a held-out
split. The readers import from here; dataset.py, above them, picks the reader for a source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from edgezoo.errors import CalibrationDataError, UsageError

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
