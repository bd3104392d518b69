"""Any Python iterable of samples, through the API (`edgezoo.convert(..., calibration=my_generator())`).

An item is a dict of input name -> array, a tuple or list of arrays in the model's input order, or a
bare array for a one-input model; each array is one sample, or a batch with the batch dimension first.
The iterable is read up to `settings.samples_wanted` samples, so an endless generator is fine.
"""

from __future__ import annotations

import numpy as np

from edgezoo.calibration.sets import CalibrationSet, CalibrationSettings, build_set, match_inputs
from edgezoo.errors import CalibrationDataError

WHERE = "calibration iterable"


def _as_batch(array, spec, index: int) -> np.ndarray:
    """One sample gains a batch dimension; a batch stays as it is."""
    array = np.asarray(array)
    if array.ndim == len(spec.shape) - 1:
        return array[None]
    if array.ndim == len(spec.shape):
        return array
    raise CalibrationDataError(
        f"{WHERE}: item {index} gives input '{spec.name}' an array of shape {tuple(array.shape)}, but the model input takes "
        f"{list(spec.shape)} (a sample, or a batch with the batch dimension first)."
    )


def read_iterable(items, model, settings: CalibrationSettings) -> CalibrationSet:
    batches: dict[str, list[np.ndarray]] = {spec.name: [] for spec in model.inputs}
    specs = {spec.name: spec for spec in model.inputs}
    count = 0
    try:
        for index, item in enumerate(items):
            if count >= settings.samples_wanted:
                break
            parts = item if isinstance(item, (dict, list, tuple)) else [item]
            named, _ = match_inputs(parts, model, f"{WHERE} item {index}")
            sizes = set()
            for name, array in named.items():
                batch = _as_batch(array, specs[name], index)
                batches[name].append(batch)
                sizes.add(len(batch))
            if len(sizes) != 1:
                raise CalibrationDataError(f"{WHERE}: item {index} gives the inputs different batch sizes ({sorted(sizes)}).")
            count += sizes.pop()
    except CalibrationDataError:
        raise
    except Exception as exc:  # the user's generator failed: say where, keep the cause
        raise CalibrationDataError(f"{WHERE} raised {type(exc).__name__} after {count} samples: {exc}") from exc
    if count == 0:
        raise CalibrationDataError(f"{WHERE} gave no samples.")
    arrays = {}
    for name, parts in batches.items():
        try:
            arrays[name] = np.concatenate(parts)[: settings.samples_wanted]
        except ValueError as exc:
            raise CalibrationDataError(f"{WHERE}: the samples for input '{name}' differ in shape: {exc}.") from exc
    return build_set(arrays, model, WHERE, settings, details={"reader": "iterable", "samples_read": int(count)})
