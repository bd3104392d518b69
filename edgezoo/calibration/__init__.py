"""Calibration and validation data: a `CalibrationSet` of named model inputs, checked against the model.

Sources: folders of images, .npy/.npz, TFRecord files, and Python iterables (see `load_calibration`).
"""

from edgezoo.calibration.dataset import CalibrationSet, CalibrationSettings, from_model_data, load_calibration, synthetic

__all__ = ["CalibrationSet", "CalibrationSettings", "from_model_data", "load_calibration", "synthetic"]
