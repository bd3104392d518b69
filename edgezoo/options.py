"""The options that flow from the CLI (or a build script) into the pipeline: one frozen, validated object."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from edgezoo.formats.base import AutoPreference, Quantization, QuantizationRequest, requested_quantization
from edgezoo.errors import UsageError
from edgezoo.targets.static_shape import normalise_input_shapes


def from_namespace(options_class, namespace):
    """An options dataclass from parsed command-line arguments whose destinations are named after its fields;
    an argument left unset (None) keeps the field's default."""
    fields = dataclasses.fields(options_class)
    return options_class(**{f.name: getattr(namespace, f.name) for f in fields if getattr(namespace, f.name, None) is not None})


@dataclass(frozen=True)
class ConvertOptions:
    targets: tuple[str, ...] = ("phone",)  # built-in names, profile paths, or "all"
    out_dir: Path = Path("build")
    quantize: Quantization | QuantizationRequest | None = None  # overrides each profile's quantisation; auto: the smallest that passes
    calibration: object = None  # a folder of images, a .npz/.npy/.tfrecord path, an iterable of samples, or a CalibrationSet
    force: bool = False  # replace existing output folders
    seed: int = 0
    max_calibration_samples: int = 500
    trust_model: bool = False
    offline: bool = False  # never touch the network; missing files are named with where to put them
    cache_dir: Path | None = None  # None: $EDGEZOO_CACHE, else ~/.cache/edgezoo
    mirror: str | None = None  # base URL or folder holding the weights and hub modules; None: $EDGEZOO_MIRROR
    heldout_fraction: float = 0.2  # share of the calibration data kept apart to check parity on
    image_resize: str = "bilinear"  # how calibration images are resized to the model's input size
    calibration_features: tuple[tuple[str, str], ...] = ()  # TFRecord: (model input, feature key) pairs
    prune: float | None = None  # target sparsity (0..1) of magnitude pruning, fine-tuned by distillation
    keep_float: tuple[str, ...] = ()  # layers left in float in full-integer models
    auto_fallback: bool = True  # int8: move the worst layers back to float until parity passes
    explain_quantization: bool = False  # measure each layer's quantisation error even when parity passes
    auto_prefer: AutoPreference = AutoPreference.SIZE  # auto: the smallest passing candidate, or the smallest full-integer one
    suggest: bool = True  # a target that misses its tolerance: measure the other quantisations and name the one that passes
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # --input-shape: (input name, "" for a lone input; shape), fixed first
    # How the targets run (edgezoo/jobs/): never part of what an artifact is made from.
    jobs: int | None = None  # targets converted at once, each in a worker process; None: the cores (one target: in process)
    max_memory: int | str | None = None  # bytes (or "8G"): jobs admitted while their expected peaks fit; None: the free memory
    job_timeout: float | None = None  # seconds per job; None: no limit
    executor: str = "local"  # local worker processes, or ray
    ray_address: str | None = None  # ray: the cluster to join; None starts a local one

    def load_options(self, progress=None):
        """The zoo's share of these options (edgezoo.zoo.LoadOptions); progress reports downloads."""
        from edgezoo.zoo import LoadOptions

        return LoadOptions(trust_model=self.trust_model, offline=self.offline, cache_dir=self.cache_dir,
                           mirror=self.mirror, progress=progress)

    def __post_init__(self):
        # Accept the plain values a caller naturally writes, and keep the typed form.
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if not targets:
            raise UsageError("no target given; use --target phone (or another profile name or path).")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if isinstance(self.calibration, (str, os.PathLike)):
            object.__setattr__(self, "calibration", Path(self.calibration))
        features = self.calibration_features.items() if isinstance(self.calibration_features, dict) else self.calibration_features
        object.__setattr__(self, "calibration_features", tuple(tuple(pair) for pair in features))
        object.__setattr__(self, "keep_float", (self.keep_float,) if isinstance(self.keep_float, str) else tuple(self.keep_float))
        object.__setattr__(self, "input_shapes", normalise_input_shapes(self.input_shapes))
        if self.prune is not None and not 0.0 < float(self.prune) < 1.0:
            raise UsageError(f"--prune takes a sparsity between 0 and 1 (the share of weights set to zero), got {self.prune}.")
        if self.quantize is not None:
            object.__setattr__(self, "quantize", requested_quantization(self.quantize))
        try:
            object.__setattr__(self, "auto_prefer", AutoPreference(self.auto_prefer))
        except ValueError:
            raise UsageError(f"--auto-prefer takes {' or '.join(p.value for p in AutoPreference)}, got '{self.auto_prefer}'.") from None
        if self.jobs is not None and (isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1):
            raise UsageError(f"--jobs takes a number of jobs of at least 1, got {self.jobs}.")
        if self.max_memory is not None:
            from edgezoo.jobs.memory import parse_size

            object.__setattr__(self, "max_memory", parse_size(self.max_memory))
        if self.job_timeout is not None and not float(self.job_timeout) > 0:
            raise UsageError(f"--job-timeout takes a number of seconds above 0, got {self.job_timeout}.")
        from edgezoo.jobs import check_executor

        check_executor(self.executor)
        if self.max_calibration_samples < 1:
            raise UsageError("max_calibration_samples must be at least 1.")
        self.calibration_settings()  # checks the sampling and image settings now, before any slow work

    def calibration_settings(self):
        from edgezoo.calibration import CalibrationSettings

        return CalibrationSettings(
            seed=self.seed,
            max_samples=self.max_calibration_samples,
            heldout_fraction=self.heldout_fraction,
            resize=self.image_resize,
            features=self.calibration_features,
        )
