"""edgezoo's conversions for four targets in one process, without parity checks, reports or C sources:
the same work the official tools do, for a like-for-like comparison.

    python bench/edgezoo_convert_only.py SAVED_MODEL CALIBRATION.npz OUT_DIR TARGET...
"""

import sys
from pathlib import Path

from edgezoo import load
from edgezoo.calibration import load_calibration
from edgezoo.formats import converter_for
from edgezoo.target_run import conversion_request
from edgezoo.targets import resolve_profile
from edgezoo.targets.constraints import prepare_model


def main() -> None:
    saved_model, calibration, out, *targets = sys.argv[1:]
    model = load(saved_model)
    data = load_calibration(calibration, model)
    for target in targets:
        profile = resolve_profile(target)
        request = conversion_request(profile, profile.quantization, data)
        workdir = Path(out) / profile.name
        workdir.mkdir(parents=True, exist_ok=True)
        converter_for(profile.format).convert(prepare_model(model, profile), request, workdir)


if __name__ == "__main__":
    main()
