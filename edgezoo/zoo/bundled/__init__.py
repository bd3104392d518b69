"""Models that ship inside the package, each in a folder with model.json, saved_model/ and its data.

Bundled models need no network; `digits-cnn` is the default model of the demo and the tests.
"""

from __future__ import annotations


import json
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from edgezoo.zoo import LoadOptions, register_source
from edgezoo.zoo.base import LoadedModel, ModelData, Preprocessing, read_signature, sha256_of_path

BUNDLED_ROOT = Path(__file__).resolve().parent
PREFIX = "bundled:"


@lru_cache(maxsize=None)
def bundled_models() -> dict[str, Path]:
    """Bundled model names to their folders."""
    found = {}
    for meta in sorted(BUNDLED_ROOT.glob("*/model.json")):
        found[json.loads(meta.read_text())["name"]] = meta.parent
    return found


def _name_of(source: str) -> str:
    return source[len(PREFIX):] if source.startswith(PREFIX) else source


def _matches(source: str) -> bool:
    return source.startswith(PREFIX) or source in bundled_models()


@register_source("bundled", _matches, describe=f"bundled models ({', '.join(bundled_models())})")
def load_bundled(source: str, options: LoadOptions) -> LoadedModel:
    from edgezoo.errors import SourceNotFoundError

    name = _name_of(source)
    folder = bundled_models().get(name)
    if folder is None:
        raise SourceNotFoundError(f"no bundled model '{name}'. Bundled models: {', '.join(bundled_models())}.")
    meta = json.loads((folder / "model.json").read_text())
    saved_model = folder / "saved_model"
    inputs, outputs = read_signature(saved_model)
    return LoadedModel(
        name=name,
        source=f"{PREFIX}{name}",
        saved_model_dir=saved_model,
        inputs=inputs,
        outputs=outputs,
        sha256=sha256_of_path(saved_model),
        version=meta.get("version"),
        task=meta.get("task"),
        preprocessing=Preprocessing.from_json(meta["preprocessing"]),
        labels=tuple(meta["labels"]) if meta.get("labels") else None,
        license=meta.get("weights_license"),
        description=meta.get("description"),
        author=meta.get("author"),
        load_data=partial(_load_data, folder, meta, inputs[0].name),  # a partial pickles: worker processes get it too
    )


def _load_data(folder: Path, meta: dict, input_name: str) -> ModelData:
    data = np.load(folder / meta["data"])
    if meta.get("task") == "detection":
        return _detection_data(data, meta, input_name)
    splits = np.load(folder / "splits.npz")
    preprocessing = Preprocessing.from_json(meta["preprocessing"])
    images = preprocessing.apply(data["images"][..., None])
    return ModelData(
        calibration={input_name: images[splits["calibration"]]},
        heldout={input_name: images[splits["heldout"]]},
        heldout_labels=data["labels"][splits["heldout"]].astype(np.int64),
    )


def _detection_data(data, meta: dict, input_name: str) -> ModelData:
    """A bundled detector's images (uint8 RGB) preprocessed, with the held-out images' ground-truth boxes."""
    preprocessing = Preprocessing.from_json(meta["preprocessing"])
    return ModelData(
        calibration={input_name: preprocessing.apply(data["calibration_images"])},
        heldout={input_name: preprocessing.apply(data["heldout_images"])},
        heldout_boxes=(data["heldout_boxes"], data["heldout_classes"]),
    )
