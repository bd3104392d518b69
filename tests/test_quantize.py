"""Quantisation on the model corpus: the float end of the fallback, the fallback and `auto` on the audio front ends, the
error traced to its source, and a model whose int8 passes left alone. Real converters and LiteRT throughout.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edgezoo.formats.tflite import convert as tflite, precision as tflite_precision, selective as tflite_selective
from edgezoo.formats.base import Quantization
from edgezoo.quantize import measure
from tests import corpus

FLOAT_END_SAMPLES = 16  # calibration samples for the float-end check: which ops quantise does not depend on how many


def _float32_model(name: str):
    """The corpus model as the float32 conversion can take it: gesture-lstm's LSTM converts only with a static batch."""
    from edgezoo.targets.static_shape import fix_shapes

    model = corpus.loaded(name)
    if name == "gesture-lstm":
        model = fix_shapes(model, {spec.name: (1, *spec.shape[1:]) for spec in model.inputs})
    return model


def _worst_snr(flatbuffer: bytes, inputs: dict, reference: dict) -> float:
    from edgezoo.validate.metrics import snr_db

    outputs = measure.output_nsr(flatbuffer, measure.samples_of(inputs, 40), [
        {name: array[i : i + 1].astype(np.float64) for name, array in reference.items()} for i in range(min(40, len(next(iter(inputs.values())))))])
    return min(measure.snr_db(nsr) for nsr in outputs.values()) if outputs else math.nan


@pytest.mark.parametrize("name", corpus.names())
def test_float_end_reproduces_the_float32_artifact(name, tmp_path):
    """Every op the quantiser can quantise left in float gives the float32 artifact's parity back (within 1 dB): the
    fallback's search can always reach the float end. TFLite's own denylist cannot (audio-convspec: 49 dB against 133)."""
    from edgezoo.calibration import CalibrationSettings, load_calibration
    from edgezoo.formats.base import ConversionRequest
    from edgezoo.zoo.reference import run_reference

    model = _float32_model(name)
    entry = corpus.corpus_model(name)
    data = load_calibration(entry.data_path, model, CalibrationSettings(seed=0, heldout_fraction=entry.heldout_fraction))
    reference = run_reference(model, data.heldout)
    float32 = tflite.convert(model, ConversionRequest(Quantization.FLOAT32), tmp_path).path.read_bytes()
    few = dataclasses.replace(data, calibration={k: v[:FLOAT_END_SAMPLES] for k, v in data.calibration.items()})
    calibration = tflite_selective.calibrate(float32, few)

    full = tflite_selective.quantize(float32, calibration)
    quantised = [op for op in tflite_precision.op_precisions(full) if op.precision == tflite_precision.INT8]
    assert quantised, "nothing computes in int8: the float end would prove nothing"
    sites = {site.output: site for site in tflite_selective.op_sites(float32)}
    end = tflite_selective.quantize(float32, calibration, float_ops=[sites[op.output] for op in quantised])
    computed = {op.precision for op in tflite_precision.op_precisions(end) if op.computes}
    assert computed <= {tflite_precision.FLOAT}, computed  # read back from the file: no op computes in int8

    snr_float32, snr_end = _worst_snr(float32, data.heldout, reference), _worst_snr(end, data.heldout, reference)
    assert snr_float32 > 100  # a faithful float32 conversion, so the comparison means something
    assert abs(snr_end - snr_float32) <= 1.0, (snr_end, snr_float32)
    assert _worst_snr(full, data.heldout, reference) < snr_float32 - 20  # and the int8 end is really quantised


# --- the fallback and auto on the audio front ends -----------------------------------------------------------


@pytest.fixture(scope="module")
def convspec(tmp_path_factory):
    """audio-convspec for the phone with --quantize auto: plain int8 scores 0 dB there (a square root and a log of
    int8 values), so auto goes through the int8 float fallback and on to float16."""
    out = tmp_path_factory.mktemp("convspec")
    cell, done = corpus.convert_cell("audio-convspec", "phone", out, quantize="auto")
    float32 = corpus.convert_cell("audio-convspec", "phone", out / "f32", quantize="float32")[0]
    return cell, done, float32


def test_audio_convspec_auto_keeps_the_smallest_passing_candidate(convspec):
    cell, done, float32 = convspec
    assert cell.verdict == "pass", cell.reason
    auto = done.report["auto_quantization"]
    rows = {row["candidate"]: row for row in auto["candidates"]}
    # Every candidate made and reported, in order; one is checked only when smaller than the best that passed before it.
    assert list(rows) == ["int8", "int8 + float fallback", "int16x8", "dynamic-int8", "float16", "float32"]
    assert not rows["int8"]["passed"] and rows["int8"]["snr_db"] < 15
    assert rows["int16x8"]["verdict"] == "not made (exit 4)" and "SQUARE" in rows["int16x8"]["note"]  # the converter cannot
    for row in rows.values():
        assert row["seconds"] > 0 and ("size_bytes" in row and "snr_db" in row)
    passing = [row for row in rows.values() if row["passed"]]
    kept = auto["kept"]
    assert kept == auto["chosen"] == min(passing, key=lambda row: row["size_bytes"])["candidate"]
    unchecked = [row for row in rows.values() if row["verdict"] == "not checked"]
    assert rows["float32"] in unchecked  # made and measured, and larger than what passed: never run
    assert all(row["size_bytes"] >= rows[kept]["size_bytes"] and row["snr_db"] is None for row in unchecked)
    assert done.artifact.size_bytes == rows[kept]["size_bytes"] < float32.size_bytes
    # The artifact records what it is, never "auto".
    assert done.report["quantization"] == rows[kept]["quantization"] != "auto"


def test_audio_convspec_fallback_reaches_a_passing_mix_smaller_than_float32(convspec):
    cell, done, float32 = convspec
    mix = next(row for row in done.report["auto_quantization"]["candidates"] if row["candidate"] == "int8 + float fallback")
    assert mix["passed"] and mix["size_bytes"] < float32.size_bytes


def test_fallback_search_is_bounded_and_each_step_read_back(tmp_path):
    """--quantize int8 on audio-convspec: ops ranked by measured effect, bisection over the ranked list; every step's
    size, SNR and float layers are what the converted file holds."""
    cell, done = corpus.convert_cell("audio-convspec", "phone", tmp_path, quantize="int8")
    assert cell.verdict == "pass", cell.reason
    fallback = done.report["float_fallback"]
    steps, count = fallback["steps"], fallback["float_end_count"]
    assert fallback["outcome"] == "passed" and 2 <= len(steps) <= math.ceil(math.log2(count)) + 2
    kept = steps[fallback["kept_step"]]
    assert kept["passed"] and 0 < kept["float_count"] < count
    assert not any(s["passed"] for s in steps if s["float_count"] < kept["float_count"])  # the smallest passing count
    assert steps[0]["float_count"] == 0 and not steps[0]["passed"]
    precision = done.report["precision"]
    assert precision["ops_by_precision"].get("int8", 0) > 0 and precision["ops_by_precision"].get("float32", 0) > 0
    assert set(fallback["kept_float"]) <= set(precision["float_layers"])
    assert kept["size_bytes"] == done.artifact.size_bytes
    # The error traced to its source: activations, not the inputs/outputs or the weights, and the front end's layers named.
    trace = done.report["quantization_trace"]
    assert len({layer["output"] for layer in trace["layers"]}) == len(trace["layers"]) == count  # each int8 op once
    assert trace["shares"]["activations"] > 0.9 and abs(sum(trace["shares"].values()) - 1) < 1e-6
    suspects = [layer["layer"] for layer in trace["layers"] if layer["solo_snr_db"] is not None][:4]
    assert {"Sqrt", "add_1"} & set(suspects), suspects
    assert trace["advice"] == []  # parity passed in the end: nothing left to advise
    page = (done.output_dir / "report.html").read_text()
    assert "size against SNR" in page and ">kept<" in page and "ops in float" in page


def test_a_model_whose_int8_passes_is_left_alone(tmp_path):
    """audio-logmel's int8 passes outright: no per-layer measurement, no fallback step, the converter's own artifact."""
    from edgezoo.formats.base import ConversionRequest

    cell, done = corpus.convert_cell("audio-logmel", "phone", tmp_path, quantize="int8")
    assert cell.verdict == "pass", cell.reason
    fallback, trace = done.report["float_fallback"], done.report["quantization_trace"]
    assert fallback["outcome"] == "not needed" and fallback["steps"] == []
    assert not trace["layers_measured"] and trace["layers"] == [] and "layers" not in trace["seconds"]
    request = ConversionRequest(Quantization.INT8, calibration=_calibration("audio-logmel"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "f32").mkdir()
    plain = tflite.convert(corpus.loaded("audio-logmel"), request, tmp_path / "plain")
    ops = lambda path: [(op.op, op.output, op.precision) for op in tflite_precision.op_precisions(path.read_bytes())]  # noqa: E731
    assert ops(plain.path) == ops(done.artifact.path)  # the converter's own ops (the shipped file also carries metadata)
    float32 = tflite.convert(corpus.loaded("audio-logmel"), ConversionRequest(Quantization.FLOAT32), tmp_path / "f32")
    assert done.artifact.size_bytes < float32.size_bytes  # a passing phone artifact smaller than float32
    # Traced even so: the shares of a passing int8 artifact are measured, cheaply.
    assert set(trace["shares"]) == {"io", "weights", "activations"} and trace["outputs"]


def _calibration(name: str):
    from edgezoo.calibration import CalibrationSettings, load_calibration

    entry = corpus.corpus_model(name)
    return load_calibration(entry.data_path, corpus.loaded(name), CalibrationSettings(seed=0, heldout_fraction=entry.heldout_fraction))


@pytest.fixture(scope="module")
def strict_phone(tmp_path_factory):
    profile = tmp_path_factory.mktemp("profiles") / "phone-strict.toml"
    profile.write_text('extends = "phone"\n[tolerances.int8]\nmin_snr_db = 38.0\n')
    return profile


def test_auto_measures_every_candidate_by_size_and_keeps_the_smallest_passing(tmp_path, strict_phone):
    """dynamic-fcn on a phone profile that asks 38 dB of int8: plain int8 (33 dB) misses, a mix with a few ops in float
    passes and is smaller than int16x8 (made, larger, never run); dynamic-range int8 passes and is smaller still (issue 23:
    auto used to stop at the first integer candidate that passed)."""
    cell, done = corpus.convert_cell("dynamic-fcn", str(strict_phone), tmp_path, quantize="auto")
    assert cell.verdict == "pass", cell.reason
    auto = done.report["auto_quantization"]
    rows = {row["candidate"]: row for row in auto["candidates"]}
    assert list(rows) == ["int8", "int8 + float fallback", "int16x8", "dynamic-int8", "float16", "float32"]
    mix, dynamic = rows["int8 + float fallback"], rows["dynamic-int8"]
    assert not rows["int8"]["passed"] and mix["passed"] and rows["int16x8"]["verdict"] == "not checked"
    assert mix["size_bytes"] < rows["int16x8"]["size_bytes"]
    assert dynamic["passed"] and dynamic["size_bytes"] < mix["size_bytes"]
    assert auto["prefer"] == "size" and auto["chosen"] == "dynamic-int8"
    assert done.artifact.size_bytes == dynamic["size_bytes"] == done.artifact.path.stat().st_size
    for name in ("float16", "float32"):  # made, measured and larger than what passed: not run
        assert rows[name]["verdict"] == "not checked" and rows[name]["size_bytes"] >= dynamic["size_bytes"]


def test_auto_prefer_integer_keeps_a_full_integer_artifact_over_smaller_ones(tmp_path, strict_phone):
    """The same model with --auto-prefer integer: the mix and dynamic-range int8 compute in float, so int16x8, larger,
    is kept; the artifact read back computes in integers only."""
    cell, done = corpus.convert_cell("dynamic-fcn", str(strict_phone), tmp_path, quantize="auto", auto_prefer="integer")
    assert cell.verdict == "pass", cell.reason
    auto = done.report["auto_quantization"]
    rows = {row["candidate"]: row for row in auto["candidates"]}
    assert auto["prefer"] == "integer" and auto["chosen"] == "int16x8" and rows["int16x8"]["passed"]
    assert rows["int8 + float fallback"]["passed"] and rows["int8 + float fallback"]["size_bytes"] < rows["int16x8"]["size_bytes"]
    assert all(rows[name]["verdict"] == "not tried" for name in ("dynamic-int8", "float16", "float32"))
    ops = done.report["precision"]["ops_by_precision"]
    assert not any(kind.startswith("float") for kind in ops) and done.report["precision"]["float_layers"] == [], ops


def test_advice_follows_from_the_traced_figures_and_the_failed_verdict_names_what_passes(tmp_path, convspec):
    """Without the fallback, --explain-quantization measures the layers, and the advice names them. The failed verdict
    names the quantisation that passes, measured: the smallest of the others, as auto found it on the same model."""
    cell, done = corpus.convert_cell("audio-convspec", "phone", tmp_path, quantize="int8", auto_fallback=False,
                                     explain_quantization=True)
    assert cell.verdict == "parity-fail"
    suggestion = done.report["suggestion"]
    auto_rows = {row["candidate"]: row for row in convspec[1].report["auto_quantization"]["candidates"]}
    measured = {row["candidate"]: row for row in suggestion["candidates"]}
    assert list(measured) == ["int16x8", "dynamic-int8", "float16", "float32"]  # every other mode the phone has a tolerance for
    passing = min((row for row in measured.values() if row["passed"]), key=lambda row: row["size_bytes"])
    assert suggestion["passing"] == passing["candidate"] == convspec[1].report["auto_quantization"]["kept"]
    assert suggestion["size_bytes"] == passing["size_bytes"] == auto_rows[passing["candidate"]]["size_bytes"]
    assert suggestion["flag"] == f"--quantize {passing['candidate']}" and suggestion["flag"] in suggestion["message"]
    trace = done.report["quantization_trace"]
    assert trace["layers_measured"] and done.report["float_fallback"]["outcome"] == "disabled"
    worst = [layer["layer"] for layer in trace["layers"][:3]]
    (activations,) = [line for line in trace["advice"] if line.startswith("the activations carry")]
    assert all(f"--keep-float {name}" in activations for name in worst) and "int16x8" in activations
    assert trace["calibration_settled"] is not None
