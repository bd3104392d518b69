"""The TFLite conversion's two routes (formats/tflite/frozen.py): the frozen graph of the traced signature, whose
SignatureDef edgezoo writes, must give the model the SavedModel route gives, name for name; models whose composite ops
or control flow only the SavedModel route fuses go that way."""

from __future__ import annotations

import numpy as np
import pytest

from edgezoo.formats.tflite import convert as tflite, frozen as tflite_frozen
from edgezoo.formats.base import ConversionRequest, Quantization
from tests import corpus


def _saved_model_route(model, request) -> bytes:
    return tflite._run(tflite.build_converter(model, request), model, request)


def _run_signature(flatbuffer: bytes, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner("serving_default")
    details = runner.get_input_details()
    feed = {}
    for name, array in inputs.items():
        if details[name]["dtype"] == np.int8:
            array = tflite.quantize_input(array, details[name])
        feed[name] = array
    outputs = runner(**feed)
    out_details = runner.get_output_details()
    return {name: tflite.dequantize_output(value, out_details[name]) if value.dtype == np.int8 else value
            for name, value in outputs.items()}


def _samples(name: str, count: int = 8) -> dict[str, np.ndarray]:
    return {key: value[:count].astype(np.float32) for key, value in corpus.corpus_model(name).data().items()}


@pytest.mark.parametrize("name", ["signal-split", "housing-regression"])
def test_the_frozen_route_gives_the_saved_model_routes_outputs_name_for_name(name, tmp_path):
    """signal-split's two outputs sort opposite to the graph's order; housing-regression has two inputs of different
    widths: a name put on the wrong tensor gives other values (or shapes) here."""
    model = corpus.loaded(name)
    request = ConversionRequest(Quantization.FLOAT32)
    artifact = tflite.convert(model, request, tmp_path)
    assert artifact.details["conversion_route"] == tflite_frozen.ROUTE_FROZEN
    frozen = artifact.path.read_bytes()
    usual = _saved_model_route(model, request)
    inputs = _samples(name)
    ours, theirs = _run_signature(frozen, inputs), _run_signature(usual, inputs)
    assert set(ours) == set(theirs) == {spec.name for spec in model.outputs}
    for key in theirs:
        assert np.std(theirs[key]) > 0, f"{key} does not vary with the input: the comparison would prove nothing"
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-5 * float(np.abs(theirs[key]).max()), err_msg=key)


def test_swapped_output_names_are_caught(tmp_path):
    """The comparison above can fail: the signature written with signal-split's output names swapped is told apart."""
    from ai_edge_litert.interpreter import Interpreter

    model = corpus.loaded("signal-split")
    request = ConversionRequest(Quantization.FLOAT32)
    right = tflite.convert(model, request, tmp_path).path.read_bytes()
    plain = Interpreter(model_content=right)
    names = list(plain.get_signature_runner("serving_default").get_output_details())
    _, concrete = tflite_frozen.traced_signature(model).traced()
    swapped = tflite_frozen.with_signature(right, "serving_default", tflite_frozen.input_order(concrete),
                                           list(reversed(tflite_frozen.output_order(concrete))))
    inputs = _samples("signal-split")
    good, bad = _run_signature(right, inputs), _run_signature(swapped, inputs)
    assert len(names) == 2
    assert any(not np.allclose(good[key], bad[key], atol=1e-3) for key in good)


def test_int8_calibration_feeds_each_input_its_own_samples(tmp_path):
    """The frozen graph has no signature while it is calibrated, so samples go in as lists in its input order
    (housing-regression: features [N, 8], location [N, 4]; fed the other way round they would not fit). The int8 model
    answers as the SavedModel route's does, within one quantisation step of each output."""
    from edgezoo.calibration import CalibrationSettings, load_calibration
    from edgezoo.formats.tflite.flatbuffer import read_flatbuffer

    model = corpus.loaded("housing-regression")
    entry = corpus.corpus_model("housing-regression")
    data = load_calibration(entry.data_path, model, CalibrationSettings(seed=0, heldout_fraction=entry.heldout_fraction))
    request = ConversionRequest(Quantization.INT8, calibration=data, integer_io=True)
    artifact = tflite.convert(model, request, tmp_path)
    assert artifact.details["conversion_route"] == tflite_frozen.ROUTE_FROZEN
    frozen, usual = artifact.path.read_bytes(), _saved_model_route(model, request)
    steps = {t.name: t.scale for t in read_flatbuffer(usual, "serving_default").outputs}
    inputs = {name: array[:8] for name, array in data.heldout.items()}
    ours, theirs = _run_signature(frozen, inputs), _run_signature(usual, inputs)
    for key in theirs:
        assert np.std(theirs[key]) > 0, key
        np.testing.assert_allclose(ours[key], theirs[key], atol=1.01 * steps[key], err_msg=key)


@pytest.mark.parametrize("name, because", [("gesture-lstm", "api_implements"), ("shapes-detector", "_implements")])
def test_models_with_fused_composites_go_the_saved_model_way(name, because):
    from edgezoo.zoo import load

    model = load(name) if name == "shapes-detector" else corpus.loaded(name)
    assert because in tflite_frozen.why_not(model)
    assert tflite_frozen.why_not(corpus.loaded("tiny-mobilenet")) is None


def test_the_report_keeps_why_the_frozen_route_was_not_used(tmp_path):
    """gesture-lstm goes the SavedModel way (at batch 1, as every target converts its LSTM): the artifact's details
    (report.json's artifact section) say why."""
    from edgezoo.targets.static_shape import batch_shapes, fix_shapes

    lstm = corpus.loaded("gesture-lstm")
    artifact = tflite.convert(fix_shapes(lstm, batch_shapes(lstm, 1)), ConversionRequest(Quantization.FLOAT32), tmp_path)
    assert artifact.details["conversion_route"] == tflite_frozen.ROUTE_SAVED_MODEL
    assert "api_implements" in artifact.details["frozen_route_not_used"]
    (tmp_path / "f").mkdir()
    frozen = tflite.convert(corpus.loaded("tiny-mobilenet"), ConversionRequest(Quantization.FLOAT32), tmp_path / "f")
    assert frozen.details["conversion_route"] == tflite_frozen.ROUTE_FROZEN and "frozen_route_not_used" not in frozen.details
