"""Folders of images (jpg, png, bmp; searched recursively) as model inputs.

Each image is decoded, converted to the model's channel count, resized to the model's input size,
and preprocessed with the model's own `Preprocessing`. Unreadable files are skipped and counted;
sampling picks files in a seeded order, so a large folder is not decoded whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgezoo.calibration.sets import CalibrationSet, CalibrationSettings, build_set
from edgezoo.errors import CalibrationDataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
EIGHT_BIT_MAX = 255.0
SHOWN_SKIPPED = 5  # skipped files named in the warning


def image_input(model):
    """The model's one image input [N, H, W, C] with a fixed size and 1 or 3 channels, or an error saying why not."""
    if len(model.inputs) != 1:
        raise CalibrationDataError(
            f"a folder of images can feed only a model with one image input; {model.name} takes "
            f"{', '.join(spec.name for spec in model.inputs)}. Give a .npz with one named array per input."
        )
    spec = model.inputs[0]
    if len(spec.shape) != 4 or spec.shape[3] not in (1, 3):
        raise CalibrationDataError(
            f"a folder of images needs an image input [N, height, width, 1 or 3 channels]; {model.name}'s input "
            f"'{spec.name}' has shape {list(spec.shape)}. Give a .npz or .npy of model inputs instead."
        )
    if spec.shape[1] is None or spec.shape[2] is None:
        raise CalibrationDataError(
            f"{model.name}'s input '{spec.name}' takes images of any size ({list(spec.shape)}), so edgezoo cannot tell what size "
            "to resize to. Resize the images yourself and give them as a .npz of preprocessed inputs."
        )
    return spec


def decode_image(source, height: int, width: int, channels: int, resize: str) -> np.ndarray:
    """One image (a path or encoded bytes) as a [height, width, channels] uint8 array; raises OSError or ValueError if unreadable."""
    import io

    from PIL import Image

    methods = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
               "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(handle) as image:
            image.load()
            converted = image.convert("L" if channels == 1 else "RGB")
    except Image.DecompressionBombError as exc:
        raise ValueError(str(exc)) from exc
    if converted.size != (width, height):
        converted = converted.resize((width, height), methods[resize])
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def preprocess_pixels(pixels: np.ndarray, model, dtype: str) -> np.ndarray:
    """8-bit pixels [N, H, W, C] to model inputs with the model's preprocessing.

    A model whose preprocessing expects raw values up to `pixel_max` (not 255) gets 8-bit pixels rescaled to that range.
    Integer model inputs take the pixels as they are.
    """
    if np.dtype(dtype).kind != "f":
        return pixels.astype(dtype)
    preprocessing = model.preprocessing
    raw = pixels.astype(np.float32) * np.float32(preprocessing.pixel_max / EIGHT_BIT_MAX)
    return preprocessing.apply(raw).astype(dtype)


def find_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image_folder(folder: Path, model, settings: CalibrationSettings) -> CalibrationSet:
    spec = image_input(model)
    files = find_images(folder)
    if not files:
        raise CalibrationDataError(
            f"calibration folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}; sub-folders were searched too). "
            "Put calibration images there, or give a .npz file."
        )
    _, height, width, channels = spec.shape
    wanted = min(len(files), settings.samples_wanted)
    order = np.random.default_rng(settings.seed).permutation(len(files))
    decoded: list[np.ndarray] = []
    skipped: list[tuple[Path, str]] = []
    for index in order:  # in seeded order, until enough images decoded: corrupt ones are replaced by the next
        if len(decoded) == wanted:
            break
        try:
            decoded.append(decode_image(files[index], height, width, channels, settings.resize))
        except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for truncated or mislabelled files
            skipped.append((files[index], str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    where = f"calibration folder '{folder}'"
    if not decoded:
        example = f" (e.g. {skipped[0][0].name}: {skipped[0][1]})" if skipped else ""
        raise CalibrationDataError(
            f"none of the {len(files)} image file(s) in {where} could be read; all are unreadable or corrupt{example}."
        )
    warnings = []
    if skipped:
        names = ", ".join(p.relative_to(folder).as_posix() for p, _ in skipped[:SHOWN_SKIPPED])
        more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
        warnings.append(f"{where}: skipped {len(skipped)} unreadable or corrupt image(s): {names}{more}.")
    inputs = preprocess_pixels(np.stack(decoded), model, spec.dtype)
    details = {
        "reader": "images",
        "path": str(folder),
        "images_found": len(files),
        "images_read": len(decoded),
        "images_skipped": len(skipped),
        "skipped": [p.relative_to(folder).as_posix() for p, _ in skipped],
        "resize": settings.resize,
        "preprocessing": model.preprocessing.description,
    }
    return build_set({spec.name: inputs}, model, where, settings, details=details, warnings=warnings)
