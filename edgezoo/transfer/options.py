"""The options of a finetune run: one frozen, validated object, built by the CLI or by `edgezoo.finetune(...)`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgezoo.errors import UsageError


@dataclass(frozen=True)
class FinetuneOptions:
    data: object = None  # a folder with one sub-folder per class, a .npz with x and y, or a TFRecord file
    out_dir: Path = Path("build")
    targets: tuple[str, ...] = ()  # convert the trained model for these targets (none: train and export only)
    name: str | None = None  # the trained model's name (its folder under out_dir); default: <backbone>-finetuned
    features: str | None = None  # cut a local Keras model at this layer (also `?features=LAYER` in the source)
    epochs: int = 20  # most epochs of head training; early stopping on validation loss usually ends sooner
    patience: int = 3  # epochs without a better validation loss before training stops (best weights restored)
    batch_size: int = 32
    learning_rate: float = 1e-3
    dropout: float = 0.2
    hidden_units: int = 64  # a hidden ReLU layer in the head (0: linear, which stops short on regroupings such as odd/even)
    augment: bool = False  # random flips, small rotations and crops of the training images
    fine_tune_layers: int = 0  # then train the top N backbone layers too (batch-norm layers stay frozen, in inference mode)
    fine_tune_epochs: int = 10
    fine_tune_learning_rate: float | None = None  # default: learning_rate / 10
    qat: bool = False  # quantisation-aware training for full-integer targets (tensorflow-model-optimization)
    qat_epochs: int = 3
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    image_resize: str = "bilinear"
    image_feature: str = "image"  # TFRecord feature keys
    label_feature: str = "label"
    force: bool = False
    trust_model: bool = False
    offline: bool = False
    cache_dir: Path | None = None
    mirror: str | None = None
    max_calibration_samples: int = 500

    def __post_init__(self):
        if self.data is None:
            raise UsageError("no training data given; pass --data with a folder of one sub-folder per class, a .npz with x and y, "
                             "or a TFRecord file with image and label features.")
        if isinstance(self.data, (str, os.PathLike)):
            object.__setattr__(self, "data", Path(self.data))
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        for field_name in ("epochs", "batch_size", "patience", "fine_tune_epochs", "qat_epochs"):
            if int(getattr(self, field_name)) < 1:
                raise UsageError(f"--{field_name.replace('_', '-')} must be at least 1 (got {getattr(self, field_name)}).")
        if self.hidden_units < 0:
            raise UsageError(f"--hidden-units takes a number of units, 0 (a linear head) or more (got {self.hidden_units}).")
        if self.fine_tune_layers < 0:
            raise UsageError(f"--fine-tune-layers takes a number of layers, 0 or more (got {self.fine_tune_layers}).")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout}).")
        if self.learning_rate <= 0 or (self.fine_tune_learning_rate is not None and self.fine_tune_learning_rate <= 0):
            raise UsageError("learning rates must be positive.")
        for field_name in ("validation_fraction", "test_fraction"):
            if not 0.0 < getattr(self, field_name) < 0.5:
                raise UsageError(f"--{field_name.replace('_', '-')} must be between 0 and 0.5 (got {getattr(self, field_name)}).")
        from edgezoo.calibration.dataset import RESIZE_METHODS

        if self.image_resize not in RESIZE_METHODS:
            raise UsageError(f"unknown resize method '{self.image_resize}'; use one of {', '.join(RESIZE_METHODS)}.")

    @property
    def tuning_learning_rate(self) -> float:
        return self.fine_tune_learning_rate if self.fine_tune_learning_rate is not None else self.learning_rate / 10

    def load_options(self, progress=None):
        from edgezoo.zoo import LoadOptions

        return LoadOptions(trust_model=self.trust_model, offline=self.offline, cache_dir=self.cache_dir, mirror=self.mirror,
                           progress=progress)

    def convert_options(self, calibration, targets=None):
        """The convert step's options: this run's targets, output and loading policy, calibration from its own data."""
        from edgezoo.options import ConvertOptions

        return ConvertOptions(targets=targets or self.targets, out_dir=self.out_dir, calibration=calibration, force=self.force, seed=self.seed,
                              max_calibration_samples=self.max_calibration_samples, trust_model=self.trust_model,
                              offline=self.offline, cache_dir=self.cache_dir, mirror=self.mirror)
