"""Every model without a task of its own: outputs compared tensor by tensor (edgezoo/validate/parity.py)."""

from __future__ import annotations

from edgezoo.validate import check_parity as _check_parity
from edgezoo.zoo.reference import run_reference  # noqa: F401  (part of the task interface)


def target_model(model, profile):
    return model


def target_reference(model, reference, profile):
    return reference


def finish_artifact(model, profile, artifact):
    return artifact


def check_parity(artifact, model, profile, inputs, reference, tolerance):
    return _check_parity(artifact, profile.runtime, inputs, reference, classifier=model.is_classifier,
                         tolerance=tolerance.without_detection_limits())


def report_sections(parity, model, data) -> dict:
    return {}


def golden_settings(model):
    return None
