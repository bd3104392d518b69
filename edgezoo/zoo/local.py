"""Local model files: a SavedModel folder (TF2 or tf-keras), a Keras HDF5 file (`.h5` or `.hdf5`, written by tf-keras or Keras 3), or a Keras 3 `.keras` archive.

Files that are not SavedModels are exported to one in a scratch folder, the canonical form every
converter reads. Every file is checked by zoo/safety.py before Keras or TensorFlow reads it.
Finished artifacts (`.tflite`, `.onnx`, TF.js `model.json`) are recognised by `artifact_kind` so that
`convert` can say they are outputs, and validation can accept them.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import CorruptModelError, SourceNotFoundError, UsageError
from edgezoo.paths import user_path
from edgezoo.zoo import LoadOptions, model_card, register_source
from edgezoo.zoo.base import LoadedModel, looks_like_classifier, read_signature, sha256_of_path
from edgezoo.zoo.safety import check_keras_config, check_saved_model, check_zip_member_size

# HDF5 is one format under two names: Keras 2 wrote `.hdf5` as readily as `.h5` (ModelCheckpoint examples, old model zoos).
HDF5_SUFFIXES = (".h5", ".hdf5")
MODEL_SUFFIXES = (*HDF5_SUFFIXES, ".keras")
ARTIFACT_SUFFIXES = (".tflite", ".onnx")
# What each kind of file is, in words, for messages.
KIND_NAMES = {
    "saved_model": "a TensorFlow SavedModel folder",
    "keras": "a Keras 3 .keras archive",
    "h5": "a Keras HDF5 model (.h5, .hdf5; tf-keras or Keras 3)",
    "tflite": "a TFLite model",
    "onnx": "an ONNX model",
    "tfjs": "a TF.js model (model.json)",
}
ARTIFACT_KINDS = ("tflite", "onnx", "tfjs")


def artifact_kind(path: Path | str) -> str | None:
    """What a model file or folder is: one of KIND_NAMES' keys, or None when it is none of them.

    Decided by content where the format has a signature (TFLite's 'TFL3' identifier, TF.js' JSON keys),
    else by name.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "saved_model"
        return "tfjs" if (path / "model.json").is_file() and _is_tfjs_json(path / "model.json") else None
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    suffix = path.suffix.lower()  # MODEL.H5 from a Windows share is the same file
    if suffix == ".json":
        return "tfjs" if _is_tfjs_json(path) else None
    if suffix in HDF5_SUFFIXES:
        return "h5"
    return {".keras": "keras", ".onnx": "onnx", ".tflite": "tflite"}.get(suffix)


def _is_tfjs_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and "modelTopology" in data and "weightsManifest" in data


def _matches(source: str) -> bool:
    return (
        "/" in source
        or source.startswith(".")
        or source.lower().endswith(MODEL_SUFFIXES + ARTIFACT_SUFFIXES + (".json",))
        or _exists(source)
    )


def _exists(source: str) -> bool:
    try:
        return Path(source).exists()
    except OSError:  # a name too long to exist, say
        return False


@register_source("local", _matches, describe="local paths (SavedModel folder, .keras, .h5 or .hdf5)")
def load_local(source: str, options: LoadOptions) -> LoadedModel:
    path = user_path(source)
    if not path.exists():
        raise SourceNotFoundError(f"no model at '{source}': the path does not exist. Check the path, or use a zoo name such as digits-cnn.")
    kind = artifact_kind(path)
    if kind in ARTIFACT_KINDS:
        raise UsageError(
            f"'{source}' is {KIND_NAMES[kind]}: a converted artifact, not a model edgezoo can convert. Give the original "
            "model (SavedModel folder, .keras, .h5 or .hdf5); to check an existing artifact against its original, use "
            "`edgezoo validate`."
        )
    batch_one = None
    if kind == "saved_model":
        check_saved_model(path, options.trust_model)
        saved_model, name = path, path.name
    elif kind == "h5":
        (saved_model, batch_one), name = _export_h5(path, options), path.stem
    elif kind == "keras":
        (saved_model, batch_one), name = _export_keras3(path, options), path.stem
    elif path.is_dir():
        raise CorruptModelError(f"'{source}' is a folder but not a SavedModel (no saved_model.pb in it).")
    else:
        raise SourceNotFoundError(
            f"'{source}' is not a model edgezoo can load: expected a SavedModel folder, a .keras file or a Keras HDF5 file (.h5, .hdf5)."
        )
    inputs, outputs = read_signature(saved_model)
    return model_card.apply(LoadedModel(  # a model edgezoo made (finetune) names its labels and preprocessing
        name=name,
        source=str(path),
        saved_model_dir=saved_model,
        inputs=inputs,
        outputs=outputs,
        sha256=sha256_of_path(path),
        task=_task_of(outputs, saved_model),
        batch_one_saved_model=batch_one,
    ))


DETECTOR_OUTPUTS = {"detection_boxes", "detection_classes", "detection_scores", "num_detections"}


def _task_of(outputs, saved_model: Path) -> str | None:
    """A detector exported with the Model Garden's outputs (edgezoo/tasks/detection.py), a classifier, or neither."""
    if DETECTOR_OUTPUTS <= {spec.name for spec in outputs}:
        return "detection"
    return "classification" if looks_like_classifier(outputs, saved_model) else None


def _export_h5(path: Path, options: LoadOptions) -> tuple[Path, Path | None]:
    """An HDF5 model of either Keras: the file's keras_version says which wrote it. Keras 3 writes layer configs tf-keras
    cannot read (InputLayer's batch_shape), and reads its own HDF5 files, so a Keras 3 file goes the Keras 3 way."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            written_by = handle.attrs.get("keras_version", "")
        if raw is None:
            raise ValueError("no model_config attribute (a weights-only file?)")
        config = json.loads(raw)
        written_by = written_by.decode() if isinstance(written_by, bytes) else str(written_by)
    except (OSError, ValueError, RecursionError) as exc:
        raise CorruptModelError(f"cannot read the Keras HDF5 file {path}: {exc}. Check that it is a complete model saved with model.save().") from exc
    check_keras_config(config, path, options.trust_model)
    if written_by.split(".")[0].isdigit() and int(written_by.split(".")[0]) >= 3:
        return _export_with_keras3(path, options, f"the Keras {written_by} HDF5 file")
    keras = _tf.tf_keras()
    try:
        with _tf.quiet_native_output():
            model = keras.models.load_model(path, compile=False, safe_mode=not options.trust_model)
    except Exception as exc:
        raise CorruptModelError(f"cannot load the Keras HDF5 file {path}: {type(exc).__name__}: {exc}") from exc
    return save_keras2(model), None


def save_keras2(model) -> Path:
    """A tf-keras model as the canonical SavedModel, in a scratch folder."""
    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        model.save(target, save_format="tf", include_optimizer=False)
    return target


def _export_keras3(path: Path, options: LoadOptions) -> tuple[Path, Path | None]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_member_size(archive.getinfo("config.json"), path)
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, NotImplementedError, RecursionError) as exc:
        raise CorruptModelError(f"cannot read the Keras archive {path}: {exc}. Check that it was saved with model.save('x.keras').") from exc
    check_keras_config(config, path, options.trust_model)
    return _export_with_keras3(path, options, "the Keras archive")


def _export_with_keras3(path: Path, options: LoadOptions, what: str) -> tuple[Path, Path | None]:
    """A model file Keras 3 wrote (.keras, or .h5 with keras_version 3.x), loaded by Keras 3 and exported as a SavedModel;
    and, for a recurrent model with a dynamic batch, a second export at batch 1 (LoadedModel.batch_one_saved_model)."""
    _tf.tf()
    import keras  # Keras 3, for Keras 3 files

    try:
        with _tf.quiet_native_output():
            model = keras.saving.load_model(path, compile=False, safe_mode=not options.trust_model)
    except Exception as exc:
        raise CorruptModelError(f"cannot load {what} {path}: {type(exc).__name__}: {exc}") from exc
    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        model.export(str(target), format="tf_saved_model", verbose=False)  # its summary would pollute stdout (--json)
    return target, _export_recurrent_at_batch_one(model, target)


def _export_recurrent_at_batch_one(model, exported: Path) -> Path | None:
    """A Keras 3 recurrent layer (GRU, LSTM, SimpleRNN) exported with a dynamic batch keeps a TensorList of element shape
    [?, units] that the TFLite converter cannot lower, and the exported SavedModel cannot be traced again at another
    shape (its functions are only the saved ones). The Python model can: exported at batch 1 under the same input names,
    it converts (TFLite targets use it where they would fix the batch to 1: static_shape.with_batch_of_one). None for
    other models, or when Keras cannot export it so (the TFLite conversion then says what to do)."""
    import keras

    tf = _tf.tf()
    try:
        layers = list(model._flatten_layers(include_self=False, recursive=True))
    except (AttributeError, TypeError):
        layers = list(model.layers)
    inputs = list(getattr(model, "inputs", None) or [])
    if not any(isinstance(layer, keras.layers.RNN) for layer in layers) or not inputs or all(t.shape[0] is not None for t in inputs):
        return None
    names = [spec.name for spec in read_signature(exported)[0]]
    if len(names) != len(inputs):
        return None
    if len(inputs) > 1:  # the model takes its inputs in its own order, the signature lists them by name
        if {getattr(t, "name", "") for t in inputs} != set(names):
            return None
        names = [t.name for t in inputs]
    specs = [tf.TensorSpec((1, *t.shape[1:]), t.dtype, name=name) for t, name in zip(inputs, names)]
    target = scratch_dir("savedmodel-batch1-") / "saved_model"
    try:
        with _tf.quiet_native_output():
            model.export(str(target), format="tf_saved_model", verbose=False, input_signature=specs if len(specs) == 1 else [specs])
        if sorted(spec.name for spec in read_signature(target)[0]) != sorted(names):
            return None
    except Exception:  # noqa: BLE001 - an optional second export; the dynamic one stands
        return None
    return target
