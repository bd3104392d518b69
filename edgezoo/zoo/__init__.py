"""Resolve a source string into a LoadedModel. One module per source kind, one registry.

A source module registers itself with `@register_source(name, matches)`; `load()` asks each
in registration order whether it claims the string.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgezoo.errors import SourceNotFoundError
from edgezoo.zoo.base import LoadedModel, ModelData, Preprocessing, TensorSpec, described_channels

__all__ = ["LoadedModel", "ModelData", "Preprocessing", "TensorSpec", "load", "register_source", "SOURCE_MODULES"]

# Modules that hold sources, imported lazily on first use. A new source kind: one module plus one line here.
SOURCE_MODULES = (
    "edgezoo.zoo.bundled",
    "edgezoo.zoo.keras_apps",
    "edgezoo.zoo.hub",
    "edgezoo.zoo.garden",
    "edgezoo.zoo.local",
)


@dataclass(frozen=True)
class LoadOptions:
    trust_model: bool = False  # allow Lambda layers, custom objects and file-system ops
    offline: bool = False  # never touch the network (also EDGEZOO_OFFLINE=1)
    cache_dir: Path | None = None  # None: $EDGEZOO_CACHE, else ~/.cache/edgezoo (see zoo/cache.py)
    mirror: str | None = None  # a base URL or folder to fetch from instead of the origin; None: $EDGEZOO_MIRROR
    # Download progress: progress(file name, bytes done, bytes total or None). Not part of the options' identity.
    progress: Callable[[str, int, int | None], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))


@dataclass(frozen=True)
class _Source:
    name: str
    matches: Callable[[str], bool]
    load: Callable[[str, LoadOptions], LoadedModel]
    describe: str


_SOURCES: dict[str, _Source] = {}


def register_source(name: str, matches: Callable[[str], bool], describe: str):
    def decorator(load_fn):
        _SOURCES[name] = _Source(name, matches, load_fn, describe)
        return load_fn

    return decorator


def sources() -> dict[str, _Source]:
    """The source kinds in SOURCE_MODULES' order, which is the order they are asked to claim a source: the local paths
    last, since `garden:...?checkpoint=https://...` has a '/' too (registration order depends on what was imported first)."""
    for module in SOURCE_MODULES:
        importlib.import_module(module)
    rank = {module: i for i, module in enumerate(SOURCE_MODULES)}
    return dict(sorted(_SOURCES.items(), key=lambda item: rank.get(item[1].load.__module__, len(rank))))


def load(source: str, options: LoadOptions | None = None) -> LoadedModel:
    options = options or LoadOptions()
    for entry in sources().values():
        if entry.matches(source):
            model = entry.load(source, options)
            # Every source's 1-channel image model is described as grayscale (reports, metadata), not as the default RGB.
            preprocessing = described_channels(model.preprocessing, model.inputs)
            return model if preprocessing == model.preprocessing else dataclasses.replace(model, preprocessing=preprocessing)
    kinds = "; ".join(entry.describe for entry in sources().values())
    raise SourceNotFoundError(f"unknown model source '{source}'. Known kinds: {kinds}.")
