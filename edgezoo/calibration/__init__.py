"""Calibration and validation data: a `CalibrationSet` of named model inputs, checked against the model."""

from edgezoo.calibration.dataset import CalibrationSet, from_model_data, load_calibration, synthetic

__all__ = ["CalibrationSet", "from_model_data", "load_calibration", "synthetic"]
