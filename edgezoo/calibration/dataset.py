"""The CalibrationSet: model inputs by name, split into calibration samples and held-out validation samples."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgezoo.errors import CalibrationDataError


@dataclass(frozen=True)
class CalibrationSet:
    calibration: dict[str, np.ndarray]  # input name -> [N, ...] model-ready arrays
    heldout: dict[str, np.ndarray]  # inputs used to compare the artifact with the original
    heldout_labels: np.ndarray | None = None
    origin: str = "user"  # "user", "bundled", or "synthetic"
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_calibration(self) -> int:
        return len(next(iter(self.calibration.values())))

    @property
    def num_heldout(self) -> int:
        return len(next(iter(self.heldout.values())))

    def representative_samples(self):
        """One sample at a time, batch of one, as TFLite's representative dataset wants."""
        for index in range(self.num_calibration):
            yield {name: array[index : index + 1] for name, array in self.calibration.items()}

    def statistics(self) -> dict:
        return {
            "origin": self.origin,
            "num_calibration": self.num_calibration,
            "num_heldout": self.num_heldout,
            "inputs": {
                name: {
                    "count": int(array.shape[0]),
                    "min": float(array.min()),
                    "max": float(array.max()),
                    "mean": float(array.mean()),
                }
                for name, array in self.calibration.items()
            },
            "warnings": list(self.warnings),
        }


def _check_against_model(arrays: dict[str, np.ndarray], model, where: str) -> dict[str, np.ndarray]:
    """Match arrays to the model's inputs by name, and check shape, dtype and values."""
    expected = {spec.name: spec for spec in model.inputs}
    if len(arrays) == 1 and len(expected) == 1 and next(iter(arrays)) not in expected:
        arrays = {next(iter(expected)): next(iter(arrays.values()))}  # a lone unnamed array feeds the lone input
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise CalibrationDataError(
            f"{where} has no array for the model input(s) {', '.join(missing)} (it has: {', '.join(sorted(arrays))}). "
            "Name the arrays after the model's inputs (see `edgezoo zoo info`)."
        )
    checked = {}
    for name, spec in expected.items():
        array = arrays[name]
        want = tuple(spec.shape[1:])
        if array.ndim != len(spec.shape) or any(w is not None and w != got for w, got in zip(want, array.shape[1:])):
            raise CalibrationDataError(
                f"{where}: array '{name}' has shape {tuple(array.shape)}, but the model input '{name}' takes "
                f"[N, {', '.join('?' if d is None else str(d) for d in want)}]. Reshape or resize the data to match."
            )
        if np.dtype(spec.dtype).kind == "f" and array.dtype.kind != "f":
            raise CalibrationDataError(
                f"{where}: array '{name}' has dtype {array.dtype}, but the model input takes {spec.dtype} values. "
                "Give preprocessed floating-point inputs (apply the model's preprocessing first)."
            )
        if np.dtype(spec.dtype).kind != "f" and array.dtype.kind not in "iub":
            raise CalibrationDataError(f"{where}: array '{name}' has dtype {array.dtype}; the model input takes {spec.dtype}.")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise CalibrationDataError(f"{where}: array '{name}' holds NaN or Inf values; remove or fix those samples.")
        if len(array) == 0:
            raise CalibrationDataError(f"{where}: array '{name}' is empty.")
        checked[name] = array.astype(spec.dtype)
    counts = {len(a) for a in checked.values()}
    if len(counts) != 1:
        raise CalibrationDataError(f"{where}: the input arrays have different sample counts ({sorted(counts)}).")
    return checked


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise CalibrationDataError(f"calibration file '{path}' does not exist. Give a .npz or .npy file of model inputs.")
    try:
        if path.suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CalibrationDataError(f"cannot read calibration file '{path}': {exc}. Check that it is a valid NumPy file.") from exc
    raise CalibrationDataError(f"calibration file '{path}' has an unsupported type; give a .npz or .npy file.")


def split(arrays: dict[str, np.ndarray], *, seed: int, max_calibration: int, heldout_fraction: float = 0.2, max_heldout: int = 200):
    """A seeded split into calibration and held-out samples; the same seed gives the same split."""
    count = len(next(iter(arrays.values())))
    order = np.random.default_rng(seed).permutation(count)
    num_heldout = min(max_heldout, max(1, int(round(count * heldout_fraction)))) if count > 1 else 0
    heldout_idx = np.sort(order[:num_heldout]) if num_heldout else order[:1]
    calibration_idx = np.sort(order[num_heldout : num_heldout + max_calibration]) if num_heldout else order[:max_calibration]
    return (
        {name: a[calibration_idx] for name, a in arrays.items()},
        {name: a[heldout_idx] for name, a in arrays.items()},
    )


def load_calibration(path: str | Path, model, *, seed: int = 0, max_samples: int = 500) -> CalibrationSet:
    path = Path(path)
    arrays = _check_against_model(_read_arrays(path), model, f"calibration file '{path}'")
    calibration, heldout = split(arrays, seed=seed, max_calibration=max_samples)
    return CalibrationSet(calibration, heldout, origin="user")


def from_model_data(model) -> CalibrationSet:
    data = model.load_data()
    return CalibrationSet(
        _check_against_model(data.calibration, model, f"bundled data of {model.name}"),
        _check_against_model(data.heldout, model, f"bundled data of {model.name}"),
        heldout_labels=data.heldout_labels,
        origin="bundled",
    )


def synthetic(model, *, seed: int = 0, count: int = 64) -> CalibrationSet:
    """Random inputs, only when the user gave none: quantisation ranges from them are guesses."""
    message = (
        f"no calibration data given for {model.name}: using {count} synthetic random samples. "
        "Quantisation ranges and parity figures from random data can be far from real use; pass --calibration."
    )
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in model.inputs:
        shape = tuple(1 if d is None else d for d in spec.shape[1:])
        if np.dtype(spec.dtype).kind == "f":
            arrays[spec.name] = rng.standard_normal((count, *shape)).astype(spec.dtype)
        else:
            arrays[spec.name] = rng.integers(0, 2, (count, *shape)).astype(spec.dtype)
    calibration, heldout = split(arrays, seed=seed, max_calibration=count)
    return CalibrationSet(calibration, heldout, origin="synthetic", warnings=(message,))
