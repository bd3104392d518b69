"""What a device bundle proves (GoldenSet) and which of its limits the device checks can measure: what the bundle
writers (this package's __init__, browser.py, c_arrays.py) share."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgezoo.targets.profile import Tolerance

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_GOLDEN_BYTES = 8 << 20  # golden data kept small enough to copy to a device; at least one sample
MAX_GOLDEN_SAMPLES = 500



@dataclass(frozen=True)
class GoldenSet:
    """What the bundle proves: the artifact, given `inputs`, must give `expected` within `tolerance`."""

    model_name: str
    target: str
    tolerance: Tolerance
    classifier: bool
    inputs: dict[str, np.ndarray]  # golden name -> [N, ...] model inputs (float, before any quantisation)
    expected: dict[str, np.ndarray]  # golden name -> the original's outputs
    # The artifact's own tensor names where they differ from the golden names (artifacts made by other tools).
    input_names: dict[str, str] = field(default_factory=dict)
    output_names: dict[str, str] = field(default_factory=dict)
    # A detector's matching settings (score_threshold, image_size, background: edgezoo.tasks.detection.golden_settings);
    # None for a model judged tensor by tensor.
    detection: dict | None = None

    @property
    def count(self) -> int:
        return len(next(iter(self.inputs.values())))

    def limited(self, max_bytes: int = MAX_GOLDEN_BYTES, max_samples: int = MAX_GOLDEN_SAMPLES) -> "GoldenSet":
        """The first samples that fit the byte budget (golden data travels to small devices)."""
        per_sample = sum(a[:1].nbytes for a in self.inputs.values()) + sum(a[:1].nbytes for a in self.expected.values())
        keep = max(1, min(self.count, max_samples, max_bytes // max(per_sample, 1)))
        cut = lambda arrays: {name: a[:keep] for name, a in arrays.items()}  # noqa: E731
        return dataclasses.replace(self, inputs=cut(self.inputs), expected=cut(self.expected))


def measurable(tolerance: Tolerance, detector: bool = False) -> dict:
    """The limits the device checks can measure, and the names of those they cannot (said in the report)."""
    from edgezoo.targets.profile import ALL_LIMITS, DETECTION_LIMITS, SETTINGS

    script = device_script()
    measurable = {*script.METRICS, *(name for kind in script.KIND_METRICS.values() for name in kind)}
    limits = {k: v for k, v in dataclasses.asdict(tolerance).items() if v is not None and k not in SETTINGS}  # margin: in `detection`
    if detector:  # its detections by the detection limits, its pre-NMS heads by the tensor limits, as on the host
        measurable |= set(script.DETECTION_METRICS)
    else:
        limits = {k: v for k, v in limits.items() if k not in DETECTION_LIMITS}
    checked = {k: v for k, v in limits.items() if k in ALL_LIMITS and ALL_LIMITS[k][0] in measurable}
    return {"tolerance": checked, "limits": {k: list(ALL_LIMITS[k][:2]) for k in checked}, "not_checked": sorted(set(limits) - set(checked))}


@functools.lru_cache(maxsize=1)
def device_script():
    """The standalone check script as a module (it imports only numpy), to ask what it can measure."""
    spec = importlib.util.spec_from_file_location("edgezoo_device_check_parity", TEMPLATES / "check_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
