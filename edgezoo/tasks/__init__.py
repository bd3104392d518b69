"""What a kind of model (its `task`) changes in the pipeline: the reference, the model each target converts, and how
parity is judged. One module per task that needs its own path, one entry here; every other model uses `tensors`.

A task module exposes:
    run_reference(model, inputs) -> reference          the original's outputs on the held-out inputs
    target_model(model, profile) -> LoadedModel        what the target's converter reads
    target_reference(model, reference, profile) -> dict  the outputs the target's artifact must reproduce
    finish_artifact(model, profile, artifact) -> Artifact  a fresh artifact made fit for its runtime
    check_parity(artifact, model, profile, inputs, reference, tolerance) -> ParityReport
    report_sections(parity, model, data) -> dict            extra report.json sections (report.html draws what it knows)
    golden_settings(model) -> dict | None                   what the device bundle's check needs beyond tolerances (None: tensors)
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASK_MODULES = {
    "detection": "edgezoo.tasks.detection",
}
DEFAULT = "edgezoo.tasks.tensors"


def task_for(model) -> ModuleType:
    return importlib.import_module(TASK_MODULES.get(model.task or "", DEFAULT))


def has_own_parity(model) -> bool:
    """Whether the model's task judges parity its own way (not tensor by tensor): its outputs are then matched by name."""
    return (model.task or "") in TASK_MODULES
