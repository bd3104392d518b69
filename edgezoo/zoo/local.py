"""Local model files: a SavedModel folder, a tf-keras `.h5`, or a Keras 3 `.keras` archive.

Files that are not SavedModels are exported to one in a scratch folder, the canonical form
every converter reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgezoo import _tf
from edgezoo._workspace import scratch_dir
from edgezoo.errors import CorruptModelError, SourceNotFoundError, UnsafeModelError
from edgezoo.zoo import LoadOptions, register_source
from edgezoo.zoo.base import LoadedModel, read_signature, sha256_of_path

MODEL_SUFFIXES = (".h5", ".keras")


def _matches(source: str) -> bool:
    return "/" in source or source.startswith(".") or source.endswith(MODEL_SUFFIXES) or Path(source).exists()


@register_source("local", _matches, describe="local paths (SavedModel folder, .keras, .h5)")
def load_local(source: str, options: LoadOptions) -> LoadedModel:
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceNotFoundError(f"no model at '{source}': the path does not exist. Check the path, or use a zoo name such as digits-cnn.")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise CorruptModelError(f"'{source}' is a folder but not a SavedModel (no saved_model.pb in it).")
        saved_model, name = path, path.name
    elif path.suffix == ".h5":
        saved_model, name = _export_h5(path, options), path.stem
    elif path.suffix == ".keras":
        saved_model, name = _export_keras3(path, options), path.stem
    else:
        raise SourceNotFoundError(
            f"'{source}' is not a model edgezoo can load: expected a SavedModel folder, a .keras or a .h5 file."
        )
    inputs, outputs = read_signature(saved_model)
    return LoadedModel(
        name=name,
        source=str(path),
        saved_model_dir=saved_model,
        inputs=inputs,
        outputs=outputs,
        sha256=sha256_of_path(path),
        task="classification" if _looks_like_classifier(outputs) else None,
    )


def _looks_like_classifier(outputs) -> bool:
    return len(outputs) == 1 and len(outputs[0].shape) == 2 and (outputs[0].shape[-1] or 0) > 1


def _refuse_lambda(config: dict, path: Path, options: LoadOptions) -> None:
    """Lambda layers carry Python bytecode that runs on load; refuse them unless the user trusts the file."""
    if options.trust_model:
        return
    text = json.dumps(config)
    if '"class_name": "Lambda"' in text:
        raise UnsafeModelError(
            f"{path} contains a Lambda layer, whose Python code would run when the model loads. "
            "Pass --trust-model (trust_model=True) only if you trust where the file came from."
        )


def _export_h5(path: Path, options: LoadOptions) -> Path:
    keras = _tf.tf_keras()
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
        if raw is None:
            raise ValueError("no model_config attribute (a weights-only file?)")
        config = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise CorruptModelError(f"cannot read the Keras .h5 file {path}: {exc}. Check that it is a complete model saved with model.save().") from exc
    _refuse_lambda(config, path, options)
    try:
        with _tf.quiet_native_output():
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise CorruptModelError(f"cannot load the Keras .h5 file {path}: {type(exc).__name__}: {exc}") from exc
    return _save_keras2(model)


def _save_keras2(model) -> Path:
    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        model.save(target, save_format="tf", include_optimizer=False)
    return target


def _export_keras3(path: Path, options: LoadOptions) -> Path:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CorruptModelError(f"cannot read the Keras archive {path}: {exc}. Check that it was saved with model.save('x.keras').") from exc
    _refuse_lambda(config, path, options)
    _tf.tf()
    import keras  # Keras 3, for Keras 3 archives

    try:
        with _tf.quiet_native_output():
            model = keras.saving.load_model(path, compile=False, safe_mode=not options.trust_model)
    except Exception as exc:
        raise CorruptModelError(f"cannot load the Keras archive {path}: {type(exc).__name__}: {exc}") from exc
    target = scratch_dir("savedmodel-") / "saved_model"
    with _tf.quiet_native_output():
        model.export(str(target), format="tf_saved_model")
    return target
