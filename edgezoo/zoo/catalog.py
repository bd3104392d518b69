"""What `edgezoo zoo list | info | pull` report: the models on offer, one model's facts, and fetching one.

`list` reads data files only (bundled models' model.json, keras_catalog.json), so it needs neither
TensorFlow nor the network. `info` and `pull` load the model the way `convert` does, so they fetch
through the same cache, mirror and checks, and honour --offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgezoo.errors import UsageError
from edgezoo.zoo import LoadOptions, load
from edgezoo.zoo.base import SIGNATURE_KEY, read_signature


@dataclass(frozen=True)
class CatalogEntry:
    source: str
    task: str | None
    parameters: int | None
    input_shape: tuple[int, ...] | None  # without the batch dimension
    preprocessing: str
    license: str | None
    description: str = ""

    def to_json(self) -> dict:
        return {"source": self.source, "task": self.task, "parameters": self.parameters,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "preprocessing": self.preprocessing, "license": self.license, "description": self.description}


def list_models(task: str | None = None, max_parameters: int | None = None) -> list[CatalogEntry]:
    entries = _bundled_entries() + _keras_entries() + _garden_entries()
    if task is not None:
        entries = [e for e in entries if e.task == task]
    if max_parameters is not None:
        entries = [e for e in entries if e.parameters is not None and e.parameters <= max_parameters]
    return entries


def _bundled_entries() -> list[CatalogEntry]:
    from edgezoo.zoo.bundled import bundled_models

    entries = []
    for name, folder in bundled_models().items():
        meta = json.loads((folder / "model.json").read_text())
        entries.append(CatalogEntry(
            source=name,
            task=meta.get("task"),
            parameters=meta.get("parameters") or count_parameters(folder / "saved_model"),
            input_shape=tuple(meta["input_shape"]) if meta.get("input_shape") else read_signature(folder / "saved_model")[0][0].shape[1:],
            preprocessing=meta.get("preprocessing", {}).get("description", "none"),
            license=meta.get("weights_license"),
            description=meta.get("description", "bundled with edgezoo"),
        ))
    return entries


def _keras_entries() -> list[CatalogEntry]:
    from edgezoo.zoo import keras_apps

    return [
        CatalogEntry(
            source=keras_apps.PREFIX + name,
            task="classification",
            parameters=entry["parameters"],
            input_shape=(entry["input_size"], entry["input_size"], 3),
            preprocessing=keras_apps.FAMILY_PREPROCESSING[entry["module"]].description,
            license=keras_apps.WEIGHTS_LICENSES.get(entry["module"]),
            description=f"Keras applications ({entry['module']}), ImageNet weights",
        )
        for name, entry in keras_apps.catalog().items()
    ]


def _garden_entries() -> list[CatalogEntry]:
    """Model Garden detectors (edgezoo/zoo/garden.py); listed without importing the Garden."""
    from edgezoo.zoo.garden import PREFIX, PREPROCESSING

    return [CatalogEntry(
        source=f"{PREFIX}retinanet_mobile_coco?backbone={backbone}&input_size=320&classes=N",
        task="detection", parameters=None, input_shape=(320, 320, 3), preprocessing=PREPROCESSING.description,
        license="Apache-2.0 (TensorFlow Model Garden)",
        description=f"RetinaNet with a {backbone} backbone and an FPN from the Garden's config; ?checkpoint=PATH for trained weights",
    ) for backbone in ("mobilenetv2", "mobilenetv3small", "mobilenetv3large")]


def parse_count(text: str) -> int:
    """`5M`, `500k`, `1.2G` or `3000000` -> a number of parameters."""
    text = text.strip().upper()
    factor = {"K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise UsageError(f"'{text}' is not a parameter count; write e.g. 5M, 500k or 3000000.") from None


def model_info(source: str, options: LoadOptions) -> dict:
    model = load(source, options)
    info = model.to_json()
    info["parameters"] = model.details.get("parameters") or count_parameters(model.saved_model_dir, model.signature_key)
    info["size_bytes"] = _folder_size(model.saved_model_dir)
    info["labels"] = len(model.labels) if model.labels else None
    info["files"] = model.details.get("files", [])
    return info


def pull(source: str, options: LoadOptions) -> dict:
    """Fetch what `source` needs into the cache (verified), and say what is there."""
    model = load(source, options)
    files = list(model.details.get("files", []))
    if "module_dir" in model.details and "download_url" in model.details:
        files.append({"path": model.details["module_dir"], "origin": model.details["download_url"],
                      "verification": "extracted hub module"})
    return {"source": model.source, "name": model.name, "files": files, "sha256": model.sha256}


def count_parameters(saved_model_dir: Path, signature_key: str = SIGNATURE_KEY) -> int:
    """Numbers held by the variables the serving signature uses (each counted once, as Keras counts them)."""
    from edgezoo import _tf

    tf = _tf.tf()
    with _tf.quiet_native_output():
        loaded = tf.saved_model.load(str(saved_model_dir))  # kept alive while its variables are read
    unique = {id(v): v for v in loaded.signatures[signature_key].variables}  # a variable captured twice is still one
    return int(sum(v.shape.num_elements() for v in unique.values()))


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
