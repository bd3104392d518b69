"""Task accuracy against the ground-truth labels: the float model in TensorFlow and every artifact on its own runtime.

Parity (edgezoo/validate/) says how close an artifact is to the float model; this says how often each one is right,
on the held-out test split the training never saw. Figures are computed from the runtimes' outputs, per class too.
"""

from __future__ import annotations

import numpy as np

from edgezoo._tf import quiet_native_output
from edgezoo.errors import EdgezooError
from edgezoo.formats import runner_for

MISCLASSIFIED_SHOWN = 8


def scores(probabilities: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """Accuracy, the confusion matrix (rows: true class, columns: predicted), per-class precision and recall, predictions."""
    predicted = np.argmax(probabilities, axis=-1)
    count = len(class_names)
    confusion = np.zeros((count, count), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = []
    for index, name in enumerate(class_names):
        hits, said, actual = confusion[index, index], confusion[:, index].sum(), confusion[index].sum()
        per_class.append({"class": name, "support": int(actual), "precision": float(hits / said) if said else None,
                          "recall": float(hits / actual) if actual else None})
    return {"accuracy": float(np.mean(predicted == labels)) if len(labels) else None, "samples": int(len(labels)),
            "correct": int(np.sum(predicted == labels)), "confusion": confusion.tolist(), "per_class": per_class,
            "predicted": predicted.tolist()}


def run_outputs(artifact, runtime: str, pixels: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
    with quiet_native_output():
        outputs = runner_for(runtime).run(artifact, {input_name: pixels})
    return outputs[output_name]


def artifact_accuracy(artifact, runtime: str, test, input_name: str, output_name: str) -> dict:
    """An artifact's accuracy on the test split on `runtime`; a runtime failure is recorded, not raised."""
    try:
        probabilities = run_outputs(artifact, runtime, test.pixels, input_name, output_name)
    except EdgezooError as exc:
        return {"accuracy": None, "samples": len(test), "error": str(exc)}
    return scores(probabilities, test.labels, test.class_names)


def accuracy_table(float_scores: dict, conversion, test, input_name: str, output_name: str, label: str = "") -> list[dict]:
    """One row per model: the float model first, then every target of the conversion (failed ones with their reason).
    `label` marks the rows of a variant (" + QAT")."""
    rows = [{"model": f"float (trained SavedModel){label}", "target": None, "runtime": "tensorflow", "format": "saved_model",
             "quantization": "float32", "accuracy": float_scores["accuracy"], "samples": float_scores["samples"],
             "agreement_with_float": 1.0, "variant": label.strip(" +") or None}]
    float_predicted = np.asarray(float_scores["predicted"])
    for target in (conversion.targets if conversion is not None else ()):
        name = f"{target.target}{label}"
        if target.failure is not None:
            rows.append({"model": name, "target": target.target, "runtime": target.profile.runtime if target.profile else None,
                         "accuracy": None, "samples": len(test), "error": target.failure.message, "status": target.status})
            continue
        artifact = target.artifact
        measured = artifact_accuracy(artifact, target.profile.runtime, test, input_name, output_name)
        rows.append(_row(name, target.target, artifact, target.profile.runtime, measured, float_predicted,
                         parity_passed=target.parity.passed, status=target.status, variant=label.strip(" +") or None))
    return rows


def failed_rows(targets, error, label: str = "") -> list[dict]:
    """Rows for targets whose conversion raised (a run of one target raises its error): what stopped them."""
    return [{"model": f"{target}{label}", "target": target, "runtime": None, "accuracy": None, "error": str(error),
             "status": {2: "bad input", 3: "refused"}.get(error.exit_code, "failed"), "variant": label.strip(" +") or None}
            for target in targets]


def _row(name, target, artifact, runtime, measured, float_predicted, **more) -> dict:
    row = {"model": name, "target": target, "runtime": runtime, "format": artifact.format, "quantization": artifact.quantization.value,
           "size_bytes": artifact.size_bytes, "accuracy": measured.get("accuracy"), "samples": measured["samples"], **more}
    if "predicted" in measured:
        row["agreement_with_float"] = float(np.mean(np.asarray(measured["predicted"]) == float_predicted))
        row["per_class"] = measured["per_class"]
    if "error" in measured:
        row["error"] = measured["error"]
    return row


def misclassified(scores_: dict, test, limit: int = MISCLASSIFIED_SHOWN) -> list[dict]:
    """The first `limit` test images the float model gets wrong: where they came from, truth, prediction, the image."""
    wrong = [i for i, (p, t) in enumerate(zip(scores_["predicted"], test.labels.tolist())) if p != t]
    return [{"index": i, "name": test.names[i], "true": test.class_names[int(test.labels[i])],
             "predicted": test.class_names[scores_["predicted"][i]]} for i in wrong[:limit]]
