"""TFRecord files of `tf.train.Example` records as model inputs, through a feature spec.

The spec maps each model input to a feature key (by default the input's own name). A feature may hold
a float or int64 list (reshaped to the input's shape), an encoded image (decoded, resized and
preprocessed like an image folder), or a serialised tensor (`tf.io.serialize_tensor`). Records are
sampled with a seeded reservoir, so only the kept ones are parsed. `.gz` files are read as GZIP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgezoo import _tf
from edgezoo.calibration.sets import CalibrationSet, CalibrationSettings, build_set
from edgezoo.calibration.images import decode_image, preprocess_pixels
from edgezoo.errors import CalibrationDataError


def sample_records(path: Path, settings: CalibrationSettings) -> tuple[list[bytes], int]:
    """A seeded reservoir sample of the raw records (in file order) and the total number of records."""
    tf = _tf.tf()
    compression = "GZIP" if path.suffix.lower() == ".gz" else ""
    rng = np.random.default_rng(settings.seed)
    kept: list[tuple[int, bytes]] = []
    total = 0
    try:
        with _tf.quiet_native_output():
            for record in tf.data.TFRecordDataset(str(path), compression_type=compression):
                if len(kept) < settings.samples_wanted:
                    kept.append((total, record.numpy()))
                else:
                    slot = int(rng.integers(0, total + 1))
                    if slot < settings.samples_wanted:
                        kept[slot] = (total, record.numpy())
                total += 1
    except tf.errors.OpError as exc:
        raise CalibrationDataError(
            f"cannot read TFRecord file '{path}' after {total} records: {exc.message}. Check that it is a complete TFRecord file"
            " (GZIP-compressed ones must end in .gz)."
        ) from exc
    return [raw for _, raw in sorted(kept, key=lambda pair: pair[0])], total


def _sample_shape(spec, where: str, count: int) -> tuple[int, ...]:
    shape = list(spec.shape[1:])
    unknown = [i for i, d in enumerate(shape) if d is None]
    if len(unknown) > 1:
        raise CalibrationDataError(f"{where}: the model input '{spec.name}' has several dynamic dimensions {spec.shape}; give a .npz instead.")
    if unknown:
        known = int(np.prod([d for d in shape if d is not None]))
        shape[unknown[0]] = count // known if known and count % known == 0 else -1
    return tuple(shape)


def _image_like(spec) -> bool:
    return len(spec.shape) == 4 and spec.shape[3] in (1, 3) and None not in spec.shape[1:]


def _decode_bytes(raw: bytes, spec, model, settings: CalibrationSettings, where: str) -> np.ndarray:
    """An encoded image, else a serialised tensor."""
    tf = _tf.tf()
    if _image_like(spec):
        try:
            pixels = decode_image(raw, spec.shape[1], spec.shape[2], spec.shape[3], settings.resize)
            return preprocess_pixels(pixels[None], model, spec.dtype)[0]
        except (OSError, ValueError, SyntaxError):
            pass  # not an image: maybe a serialised tensor
    try:
        return tf.io.parse_tensor(raw, out_type=tf.dtypes.as_dtype(spec.dtype)).numpy()
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        raise CalibrationDataError(
            f"{where}: the bytes are neither an image nor a serialised {spec.dtype} tensor ({type(exc).__name__}). "
            "Store encoded images, float lists, or tf.io.serialize_tensor output."
        ) from exc


def _feature_value(feature, spec, model, settings: CalibrationSettings, where: str) -> np.ndarray:
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        if len(feature.bytes_list.value) != 1:
            raise CalibrationDataError(f"{where}: holds {len(feature.bytes_list.value)} byte strings; give one per record.")
        value = _decode_bytes(feature.bytes_list.value[0], spec, model, settings, where)
    elif kind == "float_list":
        value = np.asarray(feature.float_list.value, np.float32)
    elif kind == "int64_list":
        value = np.asarray(feature.int64_list.value, np.int64)
    else:
        raise CalibrationDataError(f"{where}: the feature holds no values.")
    shape = _sample_shape(spec, where, value.size)
    if value.shape == shape:
        return value
    if -1 in shape or value.size != int(np.prod(shape)):
        raise CalibrationDataError(
            f"{where}: holds {value.size} values of shape {tuple(value.shape)}, but the model input '{spec.name}' takes samples "
            f"of shape {list(spec.shape[1:])}. Check the feature spec (--calibration-feature INPUT=FEATURE)."
        )
    return value.reshape(shape)


def read_tfrecord(path: Path, model, settings: CalibrationSettings) -> CalibrationSet:
    tf = _tf.tf()
    from google.protobuf.message import DecodeError

    unknown = sorted(set(dict(settings.features)) - {spec.name for spec in model.inputs})
    if unknown:
        raise CalibrationDataError(
            f"the feature spec names {', '.join(unknown)}, which are not inputs of {model.name} "
            f"({', '.join(spec.name for spec in model.inputs)})."
        )
    records, total = sample_records(path, settings)
    if not records:
        raise CalibrationDataError(f"TFRecord file '{path}' holds no records.")
    columns: dict[str, list[np.ndarray]] = {spec.name: [] for spec in model.inputs}
    for number, raw in enumerate(records):
        try:
            example = tf.train.Example.FromString(raw)
        except DecodeError as exc:
            raise CalibrationDataError(f"TFRecord file '{path}': a record is not a tf.train.Example ({exc}).") from exc
        features = example.features.feature
        for spec in model.inputs:
            key = settings.feature_for(spec.name)
            where = f"TFRecord file '{path}', sampled record {number}, feature '{key}'"
            if key not in features:
                raise CalibrationDataError(
                    f"TFRecord file '{path}': a record has no feature '{key}' for model input '{spec.name}' "
                    f"(it has: {', '.join(sorted(features)) or 'none'}). Map the input to a feature with "
                    f"--calibration-feature {spec.name}=FEATURE."
                )
            columns[spec.name].append(_feature_value(features[key], spec, model, settings, where))
    try:
        arrays = {name: np.stack(values) for name, values in columns.items()}
    except ValueError as exc:
        raise CalibrationDataError(f"TFRecord file '{path}': records differ in shape ({exc}).") from exc
    details = {"reader": "tfrecord", "path": str(path), "records": total, "records_sampled": len(records),
               "features": {spec.name: settings.feature_for(spec.name) for spec in model.inputs}}
    return build_set(arrays, model, f"TFRecord file '{path}'", settings, details=details)
