"""The on-device proof: `device_check/` next to every artifact.

It holds the golden inputs, the original's outputs on them (`.npz`), the target's tolerances
(`tolerances.json`, which also names the model file and its tensors), and a check that runs where
the model runs, with nothing of edgezoo installed: `check_parity.py` (numpy plus the runtime) for
TFLite and ONNX, `check_parity.html` for TF.js in a browser, and for a microcontroller the golden
data as C arrays next to model_data.cc. Which checks a bundle gets depends on the target's runtime
(BUNDLE_WRITERS); each writer adds its files and returns the commands that run its check.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from edgezoo.formats.base import Artifact
from edgezoo.validate.metrics import output_kind
from edgezoo.validate.device_check.golden import TEMPLATES, GoldenSet, device_script, measurable  # noqa: F401 (the package's names)

MANIFEST_SCHEMA_VERSION = 1
Writer = Callable[[Path, Artifact, GoldenSet], list[str]]


def write_device_check(folder: Path, artifact: Artifact, golden: GoldenSet, runtime: str) -> dict | None:
    """Write the bundle for `artifact` (checked on `runtime`) into `folder`; returns the report's
    `device_check` section, or None for a runtime that has no device check."""
    writers = BUNDLE_WRITERS.get(runtime)
    if writers is None:
        return None
    golden = _judged_outputs(golden.limited(), artifact)
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(folder / "golden_inputs.npz", golden.inputs)
    save_npz(folder / "expected_outputs.npz", golden.expected)
    manifest = _manifest(folder, artifact, golden)
    (folder / "tolerances.json").write_text(json.dumps(manifest, indent=2) + "\n")
    commands = [command for write in writers for command in write(folder, artifact, golden)]
    files = sorted(p.relative_to(folder.parent).as_posix() for p in folder.parent.rglob("*") if p.is_file() and _in_bundle(p, folder))
    return {"folder": folder.name, "num_samples": golden.count, "commands": commands, "files": files, "not_checked": manifest["not_checked"]}


def _judged_outputs(golden: GoldenSet, artifact: Artifact) -> GoldenSet:
    """A detector's golden outputs: its detections, and the pre-NMS heads where the artifact has them (as the host
    judges it); any other output (a Garden export's image_info) is not judged and not shipped."""
    if golden.detection is None:
        return golden
    from edgezoo.detection.garden_model import HEAD_OUTPUTS
    from edgezoo.detection.metrics import BOXES, CLASSES, COUNT, SCORES

    tensor = lambda name: golden.output_names.get(name, name)  # noqa: E731
    kept = {name: a for name, a in golden.expected.items()
            if name in (BOXES, CLASSES, SCORES, COUNT) or (name in HEAD_OUTPUTS and tensor(name) in artifact.output_names)}
    return dataclasses.replace(golden, expected=kept)



def _in_bundle(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder) or path.name.startswith("golden_data.")


def _manifest(folder: Path, artifact: Artifact, golden: GoldenSet) -> dict:
    from edgezoo.version import __version__

    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "created_by": f"edgezoo {__version__}",
        "model_name": golden.model_name,
        "target": golden.target,
        "format": artifact.format,
        "quantization": artifact.quantization.value,
        "model": os.path.relpath(artifact.path, folder),
        "classifier": golden.classifier,
        "inputs": {name: golden.input_names.get(name, name) for name in sorted(golden.inputs)},
        "outputs": {name: golden.output_names.get(name, name) for name in sorted(golden.expected)},
        # Which decision metrics apply to each output, as the host judged it from the same reference outputs.
        "output_kinds": {name: output_kind(golden.expected[name], golden.classifier) for name in sorted(golden.expected)},
        **measurable(golden.tolerance, golden.detection is not None),
        **({"detection": _detection_settings(golden)} if golden.detection is not None else {}),
    }


def _detection_settings(golden: GoldenSet) -> dict:
    """How the device check matches a detector's boxes: edgezoo/validate/detection.py's rules and margin."""
    from edgezoo.validate.detection import DEFAULT_MARGIN

    margin = golden.tolerance.detection_score_margin
    return {**golden.detection, "score_margin": DEFAULT_MARGIN if margin is None else margin, "iou_threshold": 0.5}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like numpy.savez, for any array name (savez's own keyword names cannot be used as keys)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            # A fixed date (writestr would stamp the time): the same golden data gives the same bytes.
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)


def write_python_check(folder: Path, artifact: Artifact, golden: GoldenSet) -> list[str]:
    shutil.copyfile(TEMPLATES / "check_parity.py", folder / "check_parity.py")
    command = f"python3 {folder.name}/check_parity.py"
    hint = _RUNTIME_HINTS[artifact.format]
    (folder / "README.txt").write_text(_README.format(model=artifact.path.name, folder=folder.name, runtime=hint, command=command))
    return [command]


_RUNTIME_HINTS = {
    "tflite": "pip install 'numpy<2' tflite-runtime   (or: pip install numpy ai-edge-litert)",
    "onnx": "pip install numpy onnxruntime",
}

_README = """On-device parity check, written by edgezoo.

Copy {model} and this {folder}/ folder to the device, install the runtime:
    {runtime}
and run, from the folder that holds {model}:
    {command}
It runs the model on the golden inputs (golden_inputs.npz), compares its outputs with the original
model's (expected_outputs.npz) against the target's tolerances (tolerances.json), prints a verdict,
and exits 0 when every output is within tolerance, 1 when not, 2 when it cannot start.
"""


def _browser(folder: Path, artifact: Artifact, golden: GoldenSet) -> list[str]:
    from edgezoo.validate.device_check.browser import write_browser_check

    return write_browser_check(folder, artifact, golden)


def _firmware(folder: Path, artifact: Artifact, golden: GoldenSet) -> list[str]:
    from edgezoo.validate.device_check.c_arrays import write_golden_c_arrays

    return write_golden_c_arrays(folder.parent, artifact, golden)


# Runtime -> the checks its bundle holds. A microcontroller's .tflite is also checked by check_parity.py on a
# host with the TFLite runtime; the board itself gets the golden data as C arrays.
BUNDLE_WRITERS: dict[str, tuple[Writer, ...]] = {
    "litert": (write_python_check,),
    "onnxruntime": (write_python_check,),
    "tflm": (write_python_check, _firmware),
    "tfjs-browser": (_browser,),
    "tfjs-node": (_browser,),
}
