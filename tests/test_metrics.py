"""The parity metrics and the built-in tolerances: scale-free, so a verdict means the same on every model."""

from __future__ import annotations

import numpy as np
import pytest

from edgezoo.formats.base import Quantization
from edgezoo.targets import builtin_profiles, resolve_profile
from edgezoo.validate import metrics
from edgezoo.validate.parity import compare_outputs

RNG = np.random.default_rng(0)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_output_kinds_are_read_from_the_values():
    assert metrics.output_kind(softmax(RNG.normal(size=(8, 5)))) == metrics.CLASS_SCORES
    assert metrics.output_kind(RNG.normal(size=(8, 5)), classifier=True) == metrics.CLASS_SCORES  # logits of a classifier
    assert metrics.output_kind(1 / (1 + np.exp(-RNG.normal(size=(8, 17, 6))))) == metrics.PROBABILITIES
    assert metrics.output_kind(3000 + 100 * RNG.normal(size=(8, 3))) == metrics.VALUES
    assert metrics.output_kind(RNG.normal(size=(8,))) == metrics.VALUES  # no class axis


def test_error_over_range_is_scale_free_and_sees_one_bad_element():
    ref = RNG.normal(size=(20, 30))
    out = ref + 1e-3 * RNG.normal(size=ref.shape)
    small = metrics.max_error_over_range(ref, out)
    assert metrics.max_error_over_range(1000 * ref + 5000, 1000 * out + 5000) == pytest.approx(small)
    out[3, 7] += 0.5 * np.ptp(ref)
    assert metrics.max_error_over_range(ref, out) > 0.4  # SNR barely moves for one element; this does not
    assert metrics.max_error_over_range(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0


def test_decision_agreement_ignores_the_originals_unsure_decisions():
    ref = np.array([[0.1, 0.49, 0.52, 0.9]])
    assert metrics.decision_agreement(ref, np.array([[0.2, 0.51, 0.49, 0.8]])) == 1.0  # only 0.49/0.52 flipped: unsure ones
    assert metrics.decision_agreement(ref, np.array([[0.7, 0.49, 0.52, 0.9]])) == 0.5
    assert metrics.decision_agreement(np.full((1, 3), 0.5), np.zeros((1, 3))) is None


@pytest.mark.parametrize("scale", [1e-3, 1.0, 3000.0])
def test_the_same_relative_error_gets_the_same_verdict_at_any_scale(scale):
    """The failure the real audio model showed: a faithful float conversion must not fail because of its output's scale."""
    ref = {"value": scale * RNG.normal(size=(40, 12)).astype(np.float32)}
    faithful = {"value": ref["value"] * (1 + 1e-5 * RNG.normal(size=(40, 12))).astype(np.float32)}
    broken = {"value": ref["value"] + 0.2 * scale * RNG.normal(size=(40, 12)).astype(np.float32)}
    tolerance = resolve_profile("onnx").tolerance_for(Quantization.FLOAT32)
    assert compare_outputs(ref, faithful, classifier=False, tolerance=tolerance, runtime="test").passed
    assert not compare_outputs(ref, broken, classifier=False, tolerance=tolerance, runtime="test").passed


def test_built_in_profiles_set_only_scale_free_limits():
    for name in builtin_profiles():
        for quantization, tolerance in resolve_profile(name).tolerances.items():
            assert tolerance.max_abs_error is None, f"{name} {quantization.value}: an absolute limit in a built-in profile"
            assert tolerance.min_snr_db is not None and tolerance.max_error_over_range is not None
            # relative L2 and SNR are one measure (relative L2 = 10 ** (-SNR / 20)); the defaults must agree.
            assert tolerance.max_relative_l2_error == pytest.approx(10 ** (-tolerance.min_snr_db / 20), rel=0.02), (name, quantization)


def test_an_output_of_nan_is_no_perfect_snr():
    ref = RNG.normal(size=(4, 3))
    assert np.isnan(metrics.snr_db(ref, np.full_like(ref, np.nan)))


def test_a_nearly_constant_output_is_judged_against_its_magnitude():
    """An untrained classifier's softmax is 0.1 everywhere, varying by 1e-8 (MobileNetV3Small with random weights): its
    spread is no range to judge errors by. A float32 artifact off by 7e-9 passes; int8's 1.5% error still fails."""
    rng = np.random.default_rng(0)
    ref = 0.1 + 1e-8 * rng.standard_normal((13, 10))
    assert metrics.max_error_over_range(ref, ref + 7e-9) < 1e-3
    assert metrics.max_error_over_range(ref, ref + 0.0015) > 10
    assert metrics.snr_db(ref, ref + 7e-9) > 100
