"""Compare an artifact on its runtime with the original in TensorFlow, on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgezoo._tf import quiet_native_output
from edgezoo.formats.base import Artifact
from edgezoo.errors import RuntimeFailure
from edgezoo.targets.profile import Tolerance
from edgezoo.validate import metrics
from edgezoo.formats import runner_for


@dataclass(frozen=True)
class OutputParity:
    name: str
    metrics: dict[str, float]
    violations: tuple[str, ...]
    histogram: dict | None = None  # of the signed error, for the HTML report's plots
    kind: str | None = None  # metrics.output_kind: which decision metrics apply

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            **self.metrics,
            "passed": self.passed,
            "violations": list(self.violations),
            "error_histogram": self.histogram,
        }


@dataclass(frozen=True)
class ParityReport:
    runtime: str
    num_samples: int
    outputs: tuple[OutputParity, ...]
    tolerance: Tolerance
    error: str | None = None  # the runtime failed to run the artifact at all
    extra: dict | None = field(default=None, compare=False)  # a task's own evidence (a detector's boxes per image), not judged

    @property
    def passed(self) -> bool:
        return self.error is None and all(o.passed for o in self.outputs)

    @property
    def exit_code(self) -> int:
        """0 within tolerance, 1 parity below it, 4 the runtime could not run the artifact (DESIGN.md's codes)."""
        if self.error is not None:
            return 4
        return 0 if self.passed else 1

    @property
    def status(self) -> str:
        return "runtime failed" if self.error is not None else "passed" if self.passed else "parity failed"

    def summary(self) -> str:
        if self.error:
            return f"{self.runtime} failed: {self.error}"
        worst = [f"{o.name}: {'; '.join(o.violations)}" for o in self.outputs if o.violations]
        return "; ".join(worst) if worst else "all outputs within tolerance"

    def to_json(self) -> dict:
        import dataclasses

        return {
            "passed": self.passed,
            "runtime": self.runtime,
            "num_samples": self.num_samples,
            "tolerance": {k: v for k, v in dataclasses.asdict(self.tolerance).items() if v is not None},
            "outputs": [o.to_json() for o in self.outputs],
            "error": self.error,
        }


def compare_outputs(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *, classifier: bool, tolerance: Tolerance, runtime: str
) -> ParityReport:
    """Every output checked by name; all violations collected, none raised."""
    results = []
    for name in sorted(reference):
        if name not in candidate:
            results.append(OutputParity(name, {}, (f"missing from the artifact's outputs ({', '.join(sorted(candidate))})",)))
            continue
        ref, out = reference[name], candidate[name]
        if ref.shape != out.shape:
            results.append(OutputParity(name, {}, (f"shape {out.shape} differs from the original's {ref.shape}",)))
            continue
        kind = metrics.output_kind(ref, classifier)
        values = metrics.compare(ref, out, classifier=classifier, kind=kind)
        violations = tolerance.violations(values)
        if not np.all(np.isfinite(out)) and np.all(np.isfinite(ref)):
            violations.insert(0, f"{int(np.sum(~np.isfinite(out)))} non-finite values (NaN or Inf) where the original has none")
        results.append(OutputParity(name, values, tuple(violations), metrics.error_histogram(ref, out), kind))
    return ParityReport(runtime, len(next(iter(reference.values()))), tuple(results), tolerance)


def check_parity(
    artifact: Artifact, runtime: str, inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], *, classifier: bool, tolerance: Tolerance
) -> ParityReport:
    try:
        with quiet_native_output():  # runtimes print INFO lines (delegates) straight to stderr
            candidate = runner_for(runtime).run(artifact, inputs)
    except RuntimeFailure as exc:
        return ParityReport(runtime, len(next(iter(inputs.values()))), (), tolerance, error=str(exc))
    return compare_outputs(reference, candidate, classifier=classifier, tolerance=tolerance, runtime=runtime)
