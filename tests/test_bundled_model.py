"""The bundled digits-cnn model: trained, small, documented, and with outputs that vary with the input."""

import json

import numpy as np

from edgezoo.zoo.reference import run_reference
from edgezoo.zoo.bundled import bundled_models


def test_heldout_accuracy_is_at_least_95_percent(digits, digits_data):
    probabilities = run_reference(digits, digits_data.heldout)["probabilities"]
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == digits_data.heldout_labels))
    assert accuracy >= 0.95
    recorded = json.loads((bundled_models()["digits-cnn"] / "model.json").read_text())["heldout_accuracy"]
    assert abs(accuracy - recorded) < 1e-3, "model.json's accuracy (shown in the README) is out of date"


def test_outputs_vary_with_the_input(digits, digits_data):
    probabilities = run_reference(digits, digits_data.heldout)["probabilities"]
    assert np.std(probabilities, axis=0).max() > 0.1  # a constant softmax would make parity vacuous
    assert len(set(np.argmax(probabilities, axis=-1))) == 10


def test_model_is_small_and_data_is_complete(digits):
    folder = bundled_models()["digits-cnn"]
    size = sum(p.stat().st_size for p in (folder / "saved_model").rglob("*") if p.is_file())
    assert size < 1_000_000
    data = np.load(folder / "digits.npz")
    assert data["images"].shape == (1797, 8, 8) and data["images"].max() == 16
    meta = json.loads((folder / "model.json").read_text())
    assert "CC BY 4.0" in meta["data_license"] and "UCI" in meta["data_license"]
    assert digits.labels == tuple(str(d) for d in range(10))
    from edgezoo.zoo.catalog import count_parameters

    assert meta["parameters"] == count_parameters(folder / "saved_model")  # what `zoo list` shows without loading it


def test_calibration_and_heldout_splits_are_disjoint_and_fixed(digits_data):
    splits = np.load(bundled_models()["digits-cnn"] / "splits.npz")
    assert not set(splits["calibration"]) & set(splits["heldout"])
    assert digits_data.num_calibration == 200 and digits_data.num_heldout == 360
