"""Labelled training data as raw pixels (0-255) at the backbone's input size, and its seeded, stratified split.

Readers: a folder with one sub-folder per class (the sorted folder names are the labels), a `.npz` with `x` (images)
and `y` (labels: integers, or strings), a TFRecord file of `tf.train.Example` records with an encoded image and a
label feature. Decoding, resizing and the refusals reuse edgezoo/calibration/ (unreadable files are counted and
skipped, pickles are refused, TFRecord records are read through its reader), and bad data is a CalibrationDataError
(exit 2) that says what, where and what to do, as for calibration data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgezoo.calibration.images import IMAGE_SUFFIXES, SHOWN_SKIPPED, decode_image, find_images
from edgezoo.errors import CalibrationDataError
from edgezoo.paths import user_path

MIN_PER_CLASS = 3  # one each for training, validation and test
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")


@dataclass(frozen=True)
class LabelledData:
    pixels: np.ndarray  # [N, H, W, C] float32, raw pixel values 0..255 at the backbone's input size
    labels: np.ndarray  # [N] int64 class indices into class_names
    class_names: tuple[str, ...]
    names: tuple[str, ...]  # where each sample came from (file, or index), for the report's misclassified images
    details: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(count) for name, count in zip(self.class_names, counts)}

    def subset(self, index: np.ndarray) -> "LabelledData":
        return LabelledData(self.pixels[index], self.labels[index], self.class_names, tuple(self.names[i] for i in index),
                            self.details, self.warnings)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Splits:
    train: LabelledData
    validation: LabelledData
    test: LabelledData

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def read_labelled(source, image_shape: tuple[int, int, int], *, resize: str = "bilinear", image_feature: str = "image",
                  label_feature: str = "label") -> LabelledData:
    """The user's labelled data at `image_shape` (height, width, channels), checked: at least two classes, each big enough to split."""
    path = user_path(source) if isinstance(source, (str, os.PathLike)) else None
    if path is None:
        raise CalibrationDataError(f"training data of type {type(source).__name__} is not supported; give a folder, a .npz or a TFRecord file.")
    if not path.exists():
        raise CalibrationDataError(f"training data '{path}' does not exist. Give a folder with one sub-folder of images per class, "
                                   "a .npz with x and y, or a TFRecord file.")
    if path.is_dir():
        data = _read_class_folders(path, image_shape, resize)
    elif path.suffix.lower() == ".npz":
        data = _read_npz(path, image_shape, resize)
    elif path.suffix.lower() in TFRECORD_SUFFIXES or path.name.lower().endswith(tuple(s + ".gz" for s in TFRECORD_SUFFIXES)):
        data = _read_tfrecord(path, image_shape, resize, image_feature, label_feature)
    else:
        raise CalibrationDataError(f"training data '{path}' has an unsupported type; give a folder of class sub-folders, a .npz "
                                   f"(x and y) or a TFRecord file ({', '.join(TFRECORD_SUFFIXES)}).")
    check_classes(data, str(path))
    return data


def check_classes(data: LabelledData, where: str) -> None:
    if len(data.class_names) < 2:
        found = f"only the class '{data.class_names[0]}'" if data.class_names else "no class"
        raise CalibrationDataError(f"training data '{where}' holds {found}: a classifier needs at least 2 classes. Add a "
                                   "sub-folder (or label) for each class.")
    small = {name: count for name, count in data.class_counts.items() if count < MIN_PER_CLASS}
    if small:
        shown = ", ".join(f"'{name}' ({count})" for name, count in small.items())
        raise CalibrationDataError(f"training data '{where}': class(es) {shown} have too few examples to split; each class needs at "
                                   f"least {MIN_PER_CLASS} (one each for training, validation and test). Add examples or remove the class.")


# --- readers ---------------------------------------------------------------------------------------


def _read_class_folders(folder: Path, image_shape, resize: str) -> LabelledData:
    height, width, channels = image_shape
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not classes:
        hint = f" (it holds {len(loose)} images directly: put them in one sub-folder per class)" if loose else ""
        raise CalibrationDataError(f"training folder '{folder}' has no class sub-folders{hint}. Make one sub-folder per class, named "
                                   "after it, holding that class's images.")
    pixels, labels, names, skipped = [], [], [], []
    for label, class_dir in enumerate(classes):
        for file in find_images(class_dir):
            try:
                pixels.append(decode_image(file, height, width, channels, resize))
            except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for truncated or mislabelled files
                skipped.append((file, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                continue
            labels.append(label)
            names.append(file.relative_to(folder).as_posix())
    warnings = []
    if loose:
        warnings.append(f"training folder '{folder}': ignored {len(loose)} image(s) outside the class sub-folders.")
    if skipped:
        shown = ", ".join(p.relative_to(folder).as_posix() for p, _ in skipped[:SHOWN_SKIPPED])
        more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
        warnings.append(f"training folder '{folder}': skipped {len(skipped)} unreadable or corrupt image(s): {shown}{more}.")
    if not pixels:
        example = f" (e.g. {skipped[0][0].name}: {skipped[0][1]})" if skipped else ""
        raise CalibrationDataError(f"training folder '{folder}' holds no readable images ({', '.join(IMAGE_SUFFIXES)}) in its "
                                   f"class sub-folders{example}.")
    details = {"reader": "class folders", "path": str(folder), "images_read": len(pixels), "images_skipped": len(skipped),
               "skipped": [p.relative_to(folder).as_posix() for p, _ in skipped], "resize": resize}
    return LabelledData(np.stack(pixels).astype(np.float32), np.asarray(labels, np.int64), tuple(c.name for c in classes),
                        tuple(names), details, tuple(warnings))


def _label_indices(raw: np.ndarray, where: str, given_names=None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as class indices and the class names: integers 0..K-1 (named by `given_names` or by number), or strings (sorted)."""
    raw = np.asarray(raw).reshape(-1)
    if raw.dtype.kind in "iub":
        if raw.size and raw.min() < 0:
            raise CalibrationDataError(f"{where}: labels must be class indices 0..K-1 or class names; found {int(raw.min())}.")
        count = int(raw.max()) + 1 if raw.size else 0
        names = tuple(str(n) for n in np.asarray(given_names).reshape(-1)) if given_names is not None else tuple(str(i) for i in range(count))
        if len(names) < count:
            raise CalibrationDataError(f"{where}: label {count - 1} has no name ({len(names)} class names given).")
        present = np.unique(raw)
        if len(present) < len(names):  # numbered classes without examples would be classes the model can never learn
            missing = [names[i] for i in range(len(names)) if i not in set(present.tolist())]
            raise CalibrationDataError(f"{where}: class(es) {', '.join(missing[:5])} have no examples; each class needs at least "
                                       f"{MIN_PER_CLASS}. Renumber the labels 0..K-1 over the classes present.")
        return raw.astype(np.int64), names
    if raw.dtype.kind in "US":
        text = np.char.decode(raw, "utf-8") if raw.dtype.kind == "S" else raw
        names = tuple(sorted(set(text.tolist())))
        lookup = {name: index for index, name in enumerate(names)}
        return np.asarray([lookup[t] for t in text.tolist()], np.int64), names
    raise CalibrationDataError(f"{where}: labels have dtype {raw.dtype}; give integer class indices or class names.")


def fit_images(images: np.ndarray, image_shape, resize: str, where: str) -> np.ndarray:
    """Image arrays [N, H, W] or [N, H, W, C] to raw float pixels at `image_shape` (grey repeated to RGB, RGB averaged to grey)."""
    height, width, channels = image_shape
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise CalibrationDataError(f"{where}: x has shape {tuple(images.shape)}; give images as [N, height, width] or "
                                   "[N, height, width, 1 or 3 channels].")
    if images.dtype.kind not in "uif":
        raise CalibrationDataError(f"{where}: x has dtype {images.dtype}; give numeric pixel values 0..255.")
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise CalibrationDataError(f"{where}: x holds NaN or Inf values; remove or fix those samples.")
    if images.shape[-1] != channels:
        images = np.repeat(images, 3, axis=-1) if channels == 3 else images.mean(axis=-1, keepdims=True)
    if images.shape[1:3] != (height, width):
        from edgezoo import _tf

        tf = _tf.tf()
        method = {"area": "area", "nearest": "nearest", "bicubic": "bicubic"}.get(resize, "bilinear")
        images = tf.image.resize(images, (height, width), method=method).numpy().astype(np.float32)
    return images


def _read_npz(path: Path, image_shape, resize: str) -> LabelledData:
    from edgezoo.calibration.numpy_files import read_arrays

    where = f"training file '{path}'"
    arrays = read_arrays(path)  # headers checked before NumPy allocates; pickles refused
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise CalibrationDataError(f"{where} has no array {' or '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'none'}). "
                                   "Save the images as x and the labels as y: np.savez(path, x=images, y=labels).")
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or y.ndim == 0:
        raise CalibrationDataError(f"{where}: x and y must be arrays, x of images and y of one label per image; x has shape "
                                   f"{x.shape} and y {y.shape}.")
    if len(x) != len(y.reshape(-1)):
        raise CalibrationDataError(f"{where}: x holds {len(x)} images but y holds {len(y.reshape(-1))} labels; give one label per image.")
    labels, names = _label_indices(y, where, arrays.get("class_names"))
    pixels = fit_images(x, image_shape, resize, where)
    warnings = []
    if float(pixels.max(initial=0.0)) <= 1.0:
        warnings.append(f"{where}: every pixel value of x is at most 1.0. The trained model takes raw pixels 0..255 (its "
                        "preprocessing is inside it); if x is already scaled, multiply it by 255.")
    details = {"reader": "npz", "path": str(path), "samples": len(labels), "original_shape": list(x.shape[1:])}
    return LabelledData(pixels, labels, names, tuple(f"{path.name}[{i}]" for i in range(len(labels))), details, tuple(warnings))


def _read_tfrecord(path: Path, image_shape, resize: str, image_feature: str, label_feature: str) -> LabelledData:
    from edgezoo import _tf
    from edgezoo.calibration.dataset import CalibrationSettings
    from edgezoo.calibration.tfrecord import sample_records
    from google.protobuf.message import DecodeError

    tf = _tf.tf()
    height, width, channels = image_shape
    records, total = sample_records(path, CalibrationSettings(max_samples=1 << 30))  # every record, in file order
    if not records:
        raise CalibrationDataError(f"TFRecord file '{path}' holds no records.")
    pixels, raw_labels, skipped = [], [], 0
    for number, raw in enumerate(records):
        try:
            features = tf.train.Example.FromString(raw).features.feature
        except DecodeError as exc:
            raise CalibrationDataError(f"TFRecord file '{path}': record {number} is not a tf.train.Example ({exc}).") from exc
        for key in (image_feature, label_feature):
            if key not in features:
                raise CalibrationDataError(f"TFRecord file '{path}': record {number} has no feature '{key}' (it has: "
                                           f"{', '.join(sorted(features)) or 'none'}). Name the features with --image-feature and --label-feature.")
        image = features[image_feature]
        if image.WhichOneof("kind") == "bytes_list" and len(image.bytes_list.value) == 1:
            try:
                pixels.append(decode_image(image.bytes_list.value[0], height, width, channels, resize))
            except (OSError, ValueError, SyntaxError):
                skipped += 1
                continue
        else:
            values = np.asarray(image.float_list.value or image.int64_list.value, np.float32)
            if values.size != height * width * channels:
                raise CalibrationDataError(
                    f"TFRecord file '{path}': record {number}'s feature '{image_feature}' holds {values.size} values, but the "
                    f"backbone takes {height}x{width}x{channels} = {height * width * channels}. Store encoded images (PNG, JPEG) "
                    "to have them resized, or raw pixels of that size.")
            pixels.append(values.reshape(image_shape))
        raw_labels.append(_record_label(features[label_feature], f"TFRecord file '{path}': record {number}'s feature '{label_feature}'"))
    kinds = {type(v) for v in raw_labels}
    if len(kinds) > 1:
        raise CalibrationDataError(f"TFRecord file '{path}': labels mix integers and strings; use one kind.")
    if not pixels:
        raise CalibrationDataError(f"TFRecord file '{path}': none of its {total} images could be decoded.")
    labels, names = _label_indices(np.asarray(raw_labels), f"TFRecord file '{path}'")
    warnings = [f"TFRecord file '{path}': skipped {skipped} record(s) whose image could not be decoded."] if skipped else []
    details = {"reader": "tfrecord", "path": str(path), "records": total, "records_skipped": skipped,
               "features": {"image": image_feature, "label": label_feature}}
    return LabelledData(np.stack(pixels).astype(np.float32), labels, names, tuple(f"record {i}" for i in range(len(labels))),
                        details, tuple(warnings))


def _record_label(feature, where: str):
    """A record's one label: an int64 class index or a bytes class name."""
    kind = feature.WhichOneof("kind")
    values = feature.int64_list.value if kind == "int64_list" else feature.bytes_list.value if kind == "bytes_list" else ()
    if len(values) != 1:
        raise CalibrationDataError(f"{where} holds {len(values)} labels; give one int64 class index or one bytes class name per record.")
    return values[0]


# --- the split -------------------------------------------------------------------------------------


def stratified_split(data: LabelledData, validation_fraction: float, test_fraction: float, seed: int) -> Splits:
    """Per class, a seeded shuffle cut into test, validation and training shares (each at least one example)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for label in range(len(data.class_names)):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        count = len(members)
        num_test = max(1, int(round(count * test_fraction)))
        num_validation = max(1, int(round(count * validation_fraction)))
        parts["test"].append(members[:num_test])
        parts["validation"].append(members[num_test : num_test + num_validation])
        parts["train"].append(members[num_test + num_validation :])
    index = {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
    return Splits(data.subset(index["train"]), data.subset(index["validation"]), data.subset(index["test"]))


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse class frequency, scaled so that a balanced set gets weight 1 everywhere."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return {i: float(len(labels) / (num_classes * counts[i])) if counts[i] else 0.0 for i in range(num_classes)}
