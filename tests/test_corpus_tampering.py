"""Deliberately broken artifacts fail for every corpus model: the scale-free tolerances still bite.

Each corpus model is converted to a float32 .tflite and run on LiteRT on its held-out inputs; then the same
artifact is broken three ways -- its largest weight tensor scrambled, one layer's weights off by 10%, and its
outputs handed back in the wrong places (two same-shaped outputs swapped, or every output paired with another
input's) -- and each must fail the built-in phone tolerance for float32.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgezoo.formats.base import ConversionRequest, Quantization
from edgezoo.targets import resolve_profile
from edgezoo.validate import compare_outputs
from edgezoo.formats.tflite import run_litert as litert
from tests import corpus
from tests.tamper import scale_tflite_weights, tamper_tflite_weights

FLOAT32 = resolve_profile("phone").tolerance_for(Quantization.FLOAT32)
INT8 = resolve_profile("phone").tolerance_for(Quantization.INT8)  # the loosest built-in limits


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """name -> (float32 artifact, reference outputs, held-out inputs), converted once for the module."""
    from edgezoo.formats.tflite import convert as tflite
    from edgezoo.targets.constraints import prepare_model

    phone = resolve_profile("phone")
    made = {}
    for name in corpus.names():
        folder = tmp_path_factory.mktemp(name)
        model = prepare_model(corpus.loaded(name), phone)  # a recurrent model gets its batch fixed, as convert does
        artifact = tflite.convert(model, ConversionRequest(quantization=Quantization.FLOAT32), folder)
        made[name] = (artifact, corpus.reference_outputs(name), corpus.heldout_inputs(name))
    return made


def _verdict(reference, candidate, name, tolerance=FLOAT32):
    classifier = corpus.corpus_model(name).meta["task"] == "classification"
    return compare_outputs(reference, candidate, classifier=classifier, tolerance=tolerance, runtime="litert")


def _copy(artifact, path, tmp_path):
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    return dataclasses.replace(artifact, path=copy, files=(copy,)), copy


@pytest.mark.parametrize("name", corpus.names())
def test_the_faithful_artifact_passes(artifacts, name):
    artifact, reference, inputs = artifacts[name]
    report = _verdict(reference, litert.run(artifact, inputs), name)
    assert report.passed, report.summary()


@pytest.mark.parametrize("name", corpus.names())
def test_scrambled_weights_fail(artifacts, name, tmp_path):
    artifact, reference, inputs = artifacts[name]
    broken, path = _copy(artifact, artifact.path, tmp_path)
    tamper_tflite_weights(path)
    outputs = litert.run(broken, inputs)
    for tolerance in (FLOAT32, INT8):
        report = _verdict(reference, outputs, name, tolerance)
        assert not report.passed, f"{name}: scrambled weights passed {tolerance} ({[o.metrics.get('snr_db') for o in report.outputs]})"


@pytest.mark.parametrize("name", corpus.names())
def test_one_layer_off_by_ten_percent_fails(artifacts, name, tmp_path):
    artifact, reference, inputs = artifacts[name]
    broken, path = _copy(artifact, artifact.path, tmp_path)
    scale_tflite_weights(path, 1.1)
    report = _verdict(reference, litert.run(broken, inputs), name)
    assert not report.passed, f"{name}: one layer 10% off passed ({[o.metrics.get('snr_db') for o in report.outputs]})"


@pytest.mark.parametrize("name", corpus.names())
def test_outputs_in_the_wrong_place_fail(artifacts, name):
    artifact, reference, inputs = artifacts[name]
    outputs = litert.run(artifact, inputs)
    same_shape = [(a, b) for a in outputs for b in outputs if a < b and outputs[a].shape == outputs[b].shape]
    if same_shape:
        a, b = same_shape[0]
        swapped = {**outputs, a: outputs[b], b: outputs[a]}
        assert not _verdict(reference, swapped, name).passed, f"{name}: outputs {a} and {b} swapped passed"
    shifted = {key: np.roll(value, 1, axis=0) for key, value in outputs.items()}  # each answer given for another input
    assert not _verdict(reference, shifted, name).passed, f"{name}: outputs of other inputs passed"

