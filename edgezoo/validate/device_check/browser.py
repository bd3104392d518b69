"""The browser's device check: check_parity.html with TF.js and the harness beside it, and the golden
data as raw little-endian arrays that a web page reads with fetch()."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgezoo.formats.base import Artifact
from edgezoo.formats.tfjs import JS_DIR
from edgezoo.validate.device_check.golden import TEMPLATES, GoldenSet

# What the harness reads (harness.mjs ARRAY_TYPES); other dtypes are cast to the nearest, as TF.js does.
BROWSER_DTYPES = {"f": np.float32, "i": np.int32, "u": np.int32, "b": np.int32}


def write_browser_check(folder: Path, artifact: Artifact, golden: GoldenSet) -> list[str]:
    from edgezoo.formats.tfjs import node_modules

    tfjs = node_modules() / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
    shutil.copyfile(tfjs, folder / "tf.min.js")  # the page must work with no network: TF.js travels with it
    shutil.copyfile(JS_DIR / "harness.mjs", folder / "harness.mjs")
    shutil.copyfile(TEMPLATES / "check_parity.html", folder / "check_parity.html")
    index = {"inputs": _write_arrays(folder, "input", golden.inputs), "expected": _write_arrays(folder, "expected", golden.expected)}
    (folder / "golden.json").write_text(json.dumps(index, indent=2) + "\n")
    return [f"python3 -m http.server 8000   (in the model's folder; then open /{folder.name}/check_parity.html on that server)"]


def _write_arrays(folder: Path, kind: str, arrays: dict[str, np.ndarray]) -> dict:
    index = {}
    for position, (name, array) in enumerate(sorted(arrays.items())):
        data = np.ascontiguousarray(array.astype(np.dtype(BROWSER_DTYPES[array.dtype.kind]).newbyteorder("<")))
        file = f"golden_{kind}_{position}.bin"
        (folder / file).write_bytes(data.tobytes())
        index[name] = {"shape": list(data.shape), "dtype": np.dtype(data.dtype).name, "file": file}
    return index
