"""A build cell's content key, and whether a published cell is intact: what lets a rerun skip finished cells.

The key is the sha256 of what decides a cell's artifact: the reproducibility fingerprint's inputs (source and its
sha256, the resolved target profile, the quantisation, the options that shape data or conversion, the sha256 of the
calibration and held-out data, the tools' versions; edgezoo/reports/reproducibility.py), edgezoo's version and the
cell's folder. A cell is intact when its folder holds that key (written after it was published) and report.json, and
every artifact file the report lists still has its sha256.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgezoo.jobs.worker import read_key


def content_key(*, model, profile, options, data, folder: str) -> str:
    from edgezoo.reports.reproducibility import fingerprint_inputs
    from edgezoo.version import __version__

    quantization = options.quantize or profile.quantization
    inputs = fingerprint_inputs(model=model, profile=profile, quantization=quantization, options=options, data=data)
    inputs.update({"edgezoo": __version__, "folder": folder, "explain_quantization": options.explain_quantization,
                   "suggest": options.suggest})
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def intact(folder: Path, key: str) -> dict | None:
    """The cell's report when folder holds a finished cell made with `key` and its files are unchanged, else None."""
    if read_key(folder) != key:
        return None
    try:
        report = json.loads((folder / "report.json").read_text())
        files = report["reproducibility"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name, digest in files.items():
        try:
            if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
                return None
        except OSError:
            return None
    return report
