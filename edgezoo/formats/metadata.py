"""What an app needs to use an artifact as it is, written into the artifact: formats/<format>/metadata.py each.

Each exposes `FORMAT`, `write(artifact, facts) -> int` (writes the facts into the artifact's files and
returns the bytes it added) and `read(path) -> dict | None` (the facts as the file carries them). The facts come
from the LoadedModel (`ModelFacts.of`): name, description, version, author and licence where known, the source
and its sha256, each image input's normalisation and value range, and the labels of a classifier.

The pipeline embeds them once per artifact (`embed`), after the converter and before the target's checks, so
the size budget, the measured arena, the C sources and the parity check all see the file that ships.
Nothing in the facts depends on the time or the machine: the same model and options give the same bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edgezoo.errors import UsageError
from edgezoo.formats import writer_for
from edgezoo.zoo.base import described_channels

LABELS_FILE = "labels.txt"
PIXEL_LEVELS = 255.0  # the 8-bit pixels (0..255) an app's image library hands over
IMAGE_CHANNELS = {1: "GRAYSCALE", 3: "RGB"}


@dataclass(frozen=True)
class ImageInput:
    """How an app turns an 8-bit image into this input: (pixel - mean) / std per channel, then the model's range."""

    name: str
    color_space: str  # RGB or GRAYSCALE; BGR where the model wants its channels reversed (TFLite can only say UNKNOWN)
    mean: tuple[float, ...]  # in 0..255 pixel units, per channel of the model's input
    std: tuple[float, ...]
    min: tuple[float, ...]  # the model input's value range over pixels 0..255
    max: tuple[float, ...]
    description: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def pixel_normalization(preprocessing, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std that take 8-bit pixels p (0..255) to the model's input as (p - mean) / std, per channel.

    A `Preprocessing` takes a raw value x (0..pixel_max) to ((x * scale + offset) - m) / s, and an 8-bit image
    is rescaled to it first: x = p * pixel_max / 255. With k = scale * pixel_max / 255 that is
        y = (p * k + offset - m) / s = (p - (m - offset) / k) / (s / k),
    so mean = (m - offset) / k and std = s / k (m = 0 and s = 1 where the preprocessing has none). Examples:
    MobileNet's x / 127.5 - 1 gives 127.5 and 127.5; digits-cnn's x / 16 on 0..16 gives 0 and 255; a model that
    takes raw pixels (its preprocessing baked into the graph) gives 0 and 1, the identity, which is what the
    consumer must then do. The channel flip of BGR models is not a normalisation: the values here are in the
    model's channel order, and the colour space says BGR.
    """
    k = preprocessing.scale * preprocessing.pixel_max / PIXEL_LEVELS
    if k == 0:
        raise UsageError(f"preprocessing scale {preprocessing.scale} maps every pixel to one value; it cannot be written as a normalisation.")
    per_channel = lambda values, default: tuple(values) if values is not None else (default,) * channels  # noqa: E731
    means, stds = per_channel(preprocessing.mean, 0.0), per_channel(preprocessing.std, 1.0)
    if len(means) != channels or len(stds) != channels:
        means, stds = (means * channels)[:channels], (stds * channels)[:channels]  # one value for every channel
    mean = tuple(_tidy((m - preprocessing.offset) / k) for m in means)
    std = tuple(_tidy(s / k) for s in stds)
    return mean, std


def _tidy(value: float) -> float:
    """Rounding noise off (127.49999999999999 -> 127.5): the figures are written as float32 anyway."""
    return float(round(value, 6))


def image_input(spec, preprocessing) -> ImageInput | None:
    """The image facts of an input shaped [batch, height, width, 1 or 3]; None for other inputs."""
    if len(spec.shape) != 4 or spec.shape[-1] not in IMAGE_CHANNELS or preprocessing.scale * preprocessing.pixel_max == 0:
        return None  # not an image, or a preprocessing no normalisation can express
    channels = spec.shape[-1]
    mean, std = pixel_normalization(preprocessing, channels)
    color_space = "BGR" if preprocessing.channel_order == "BGR" and channels == 3 else IMAGE_CHANNELS[channels]
    low = tuple(_tidy((0.0 - m) / s) for m, s in zip(mean, std))
    high = tuple(_tidy((PIXEL_LEVELS - m) / s) for m, s in zip(mean, std))
    return ImageInput(spec.name, color_space, mean, std, low, high, preprocessing.description)


@dataclass(frozen=True)
class ModelFacts:
    """What every artifact of one model carries about itself, whatever its format."""

    name: str
    description: str
    version: str | None
    author: str | None
    license: str | None
    source: str
    source_sha256: str
    task: str | None
    quantization: str
    converted_by: str
    preprocessing: dict  # the model's Preprocessing, as report.json has it
    images: tuple[ImageInput, ...]  # the inputs that take images
    labels: tuple[str, ...] | None  # a classifier's class names, index order
    labelled_output: str | None  # the output the labels annotate

    @classmethod
    def of(cls, model, quantization: str) -> "ModelFacts":
        from edgezoo.version import __version__

        labels, labelled = None, None
        if model.labels and model.is_classifier and len(model.outputs) == 1 and model.outputs[0].shape[-1] == len(model.labels):
            labels, labelled = tuple(model.labels), model.outputs[0].name
        # A LoadedModel built by hand (the API) may still carry the default RGB on a 1-channel input: say grayscale.
        preprocessing = described_channels(model.preprocessing, model.inputs)
        images = tuple(image for spec in model.inputs if (image := image_input(spec, preprocessing)) is not None)
        return cls(
            name=model.name,
            description=model.description or f"{model.name} ({model.task or 'model'}) from {model.source}",
            version=model.version,
            author=model.author,
            license=model.license,
            source=model.source,
            source_sha256=model.sha256,
            task=model.task,
            quantization=quantization,
            converted_by=f"edgezoo {__version__}",
            preprocessing=preprocessing.to_json(),
            images=images,
            labels=labels,
            labelled_output=labelled,
        )

    def image(self, input_name: str) -> ImageInput | None:
        return next((image for image in self.images if image.name == input_name), None)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["images"] = [image.to_json() for image in self.images]
        data["labels"] = list(self.labels) if self.labels else None
        return data

    def labels_text(self) -> str:
        return "".join(f"{label}\n" for label in self.labels or ())


def embed(model, artifact):
    """Write the model's facts into the artifact, and labels.txt beside a classifier's main file.

    Returns the artifact with `metadata_format` (where it was written), `metadata_bytes` (how much it added) and
    `labels_file` in its details.
    """
    facts = ModelFacts.of(model, artifact.quantization.value)
    writer = writer_for(artifact.format)
    added = writer.write(artifact, facts)
    details = {"metadata_format": writer.WHERE, "metadata_bytes": added}
    if facts.labels:
        labels_path = artifact.path.parent / LABELS_FILE
        labels_path.write_text(facts.labels_text(), encoding="utf-8")
        details["labels_file"] = labels_path.relative_to(artifact.path.parent).as_posix()
    return dataclasses.replace(artifact, details={**artifact.details, **details})


def read(format_name: str, path: Path) -> dict | None:
    """The metadata an artifact file carries (None when it has none), by the format's own module."""
    return writer_for(format_name).read(path)
