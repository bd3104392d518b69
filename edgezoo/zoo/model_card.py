"""`edgezoo.json` inside a SavedModel folder: what edgezoo knows of a model it made (finetune), read back by the local
source so that the folder is a zoo source like any other: its name, task, labels, preprocessing and training record.

Plain JSON data (no code); a SavedModel without the file loads as before.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgezoo.errors import CorruptModelError
from edgezoo.zoo.base import LoadedModel, Preprocessing

CARD_FILE = "edgezoo.json"
FIELDS = ("name", "task", "labels", "preprocessing", "description", "author", "license", "version")


def write(saved_model_dir: Path, card: dict) -> None:
    (Path(saved_model_dir) / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


def apply(model: LoadedModel) -> LoadedModel:
    """The model with what its card says; unchanged without a card."""
    path = Path(model.saved_model_dir) / CARD_FILE
    if not path.is_file():
        return model
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(card, dict):
            raise ValueError("not a JSON object")
        changes = {key: card[key] for key in FIELDS if card.get(key) is not None}
        if "labels" in changes:
            changes["labels"] = tuple(str(label) for label in changes["labels"])
        if "preprocessing" in changes:
            changes["preprocessing"] = Preprocessing.from_json(changes["preprocessing"])
        if "name" in changes:
            changes["name"] = str(changes["name"])
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptModelError(f"cannot read {path}, the model card edgezoo wrote: {exc}. Remove the file or re-export the model.") from exc
    details = {**model.details, **({"training": card["training"]} if "training" in card else {})}
    return dataclasses.replace(model, **changes, details=details)
