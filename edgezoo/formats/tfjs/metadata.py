"""TF.js metadata: model.json's `userDefinedMetadata`, which TF.js hands to an app as `model.metadata`.

The facts go in as they are (labels, images with their normalisation, preprocessing, source...). TF.js
itself reads two keys of that object, `signature` and `structuredOutputKeys`; edgezoo writes neither.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgezoo.errors import CorruptModelError

FORMAT = "tfjs"
WHERE = "TF.js model.json userDefinedMetadata"
KEY = "userDefinedMetadata"


def write(artifact, facts) -> int:
    path = artifact.path
    text = path.read_text()
    model_json = json.loads(text)
    model_json[KEY] = {**(model_json.get(KEY) or {}), **facts.to_json()}
    written = json.dumps(model_json)
    path.write_text(written)
    return len(written.encode()) - len(text.encode())


def read(path: Path) -> dict | None:
    try:
        model_json = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptModelError(f"{path} is not a TF.js model.json: {exc}") from exc
    return model_json.get(KEY) or None
