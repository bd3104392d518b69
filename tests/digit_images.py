"""Calibration images on disk, made from the bundled digits data: 8x8 grey PNGs scaled from 0..16 to 0..255."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS_NPZ = Path(__file__).resolve().parents[1] / "edgezoo" / "zoo" / "bundled" / "digits_cnn" / "digits.npz"


def digit_pixels(count: int, start: int = 0) -> np.ndarray:
    """[count, 8, 8] uint8 images in 0..255, from the bundled digits (values 0..16)."""
    images = np.load(DIGITS_NPZ)["images"][start : start + count]
    return np.round(images.astype(np.float64) * 255.0 / 16.0).astype(np.uint8)


def write_digit_images(folder: Path, count: int, start: int = 0, suffix: str = ".png") -> list[Path]:
    """Writes `count` digit images, spread over one sub-folder per label (so the reader must search recursively)."""
    from PIL import Image

    labels = np.load(DIGITS_NPZ)["labels"][start : start + count]
    paths = []
    for index, (pixels, label) in enumerate(zip(digit_pixels(count, start), labels)):
        path = folder / f"digit_{label}" / f"{start + index:05d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(path)
        paths.append(path)
    return paths


def write_odd_even_folders(folder: Path, count: int = 600, size: int = 32) -> Path:
    """`count` digits as size x size grey PNGs (upscaled bicubically from 8x8), in the class folders `even` and `odd`: a
    labelling digits-cnn was never trained for, at a size it does not take (finetune resizes them to 8x8): the first
    `count` digits of the bundled data."""
    from PIL import Image

    data = np.load(DIGITS_NPZ)
    for index in range(count):
        pixels = np.round(data["images"][index].astype(np.float64) * 255.0 / 16.0).astype(np.uint8)
        digit = int(data["labels"][index])
        path = folder / ("odd" if digit % 2 else "even") / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BICUBIC).save(path)
    return folder
