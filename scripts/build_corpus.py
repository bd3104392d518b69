"""Build and train the corpus of structurally diverse models, seeded, on the CPU (docs/corpus.md lists them).

    .venv/bin/python scripts/build_corpus.py                 # every model, into tests/corpus/
    .venv/bin/python scripts/build_corpus.py gesture-lstm    # one model
    .venv/bin/python scripts/build_corpus.py --out /tmp/c    # elsewhere (to compare with the committed files)

Each model is trained briefly on a synthetic task with real input -> output structure (scripts/corpus_tasks.py,
architectures in scripts/corpus_models.py), and written to tests/corpus/<name>/: `saved_model/` (one
serving_default signature, named inputs, dict outputs), `data.npz` (inputs drawn from the training
distribution, not seen in training), `targets.npz` (their true answers) and `model.json` (what it is, what it
covers, parameters, sizes, training figures, and its scores on data.npz next to a trivial predictor's).
The same seed gives the same data and, with TensorFlow's op determinism, the same weights on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's edgezoo and tests, not an installed copy

import numpy as np  # noqa: E402

import corpus_models  # noqa: E402
from edgezoo import _tf  # noqa: E402
from tests.corpus import CORPUS_DIR, CORPUS_DOC, SCORES, evaluate, rewrite_section  # noqa: E402

SEED = 20261201


@dataclass(frozen=True)
class Context:
    tf: object
    keras: object
    rng: np.random.Generator  # draws the training data

    def fit(self, net, x, y, *, loss, epochs: int, metrics=(), loss_weights=None, batch_size: int = 32, learning_rate: float = 2e-3) -> dict:
        """Adam on the training data; returns the figures model.json records (first and last epoch)."""
        net.compile(optimizer=self.keras.optimizers.Adam(learning_rate), loss=loss, metrics=list(metrics), loss_weights=loss_weights)
        history = net.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True).history
        samples = len(x[0] if isinstance(x, list) else x)
        return {
            "train_samples": samples,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": f"Adam(learning_rate={learning_rate})",
            "loss": loss if isinstance(loss, str) else list(loss),
            "first_epoch": {key: round(float(values[0]), 5) for key, values in history.items()},
            "final_epoch": {key: round(float(values[-1]), 5) for key, values in history.items()},
        }


def model_seed(name: str) -> int:
    """A seed per model, so that each model is the same whichever others are built in the same run."""
    return SEED + zlib.crc32(name.encode()) % 100_000


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed with fixed zip timestamps, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def save_serving(tf, export, folder: Path) -> None:
    """The serving function as the only signature of a tf.Module that holds just the variables it reads."""
    module = tf.Module()
    module.weights = list(export.variables)
    module.serve = tf.function(lambda **inputs: export.serve(**inputs))
    specs = {name: tf.TensorSpec(shape, tf.float32, name=name) for name, shape in export.inputs.items()}
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function(**specs)})


HDF5_FILE = "model.hdf5"
LEGACY_KERAS_VERSION = "2.0.8"


def save_legacy_hdf5(net, path: Path) -> None:
    """tf-keras' legacy HDF5 file with its attributes as Keras 2.0 wrote them: a Sequential's config a bare list of
    layers (tf-keras reads both forms), keras_version 2.0.8 (no weight conversion applies to a 2.x TensorFlow file)."""
    import h5py

    net.save(path, include_optimizer=False)  # HDF5 by the suffix, model_config in the file's attributes
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        if config["class_name"] == "Sequential":
            config["config"] = config["config"]["layers"]
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = LEGACY_KERAS_VERSION
        handle["model_weights"].attrs["keras_version"] = LEGACY_KERAS_VERSION


def baseline(score: str, target: np.ndarray) -> float:
    """What a trivial predictor reaches: the majority class, the mean box or value, an all-positive mask, chance."""
    if score == "accuracy":
        return float(np.max(np.bincount(target.astype(int))) / len(target))
    if score == "binary_accuracy":
        share = target.reshape(len(target), -1).mean(axis=0)
        return float(np.mean(np.maximum(share, 1 - share)))
    if score == "r2":
        return 0.0
    if score == "mean_iou":
        return SCORES[score](np.broadcast_to(target.mean(axis=0), target.shape), target)
    if score == "mask_iou":
        return float(np.mean(target > 0.5))
    if score == "centroid_accuracy":
        return float(1.0 / len(np.unique(target)))
    raise KeyError(score)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build(spec, out: Path) -> dict:
    import edgezoo
    from edgezoo.zoo.reference import run_reference

    tf, keras = _tf.tf(), _tf.tf_keras()
    seed = model_seed(spec.name)
    keras.utils.set_random_seed(seed)
    export = spec.build(Context(tf, keras, np.random.default_rng([seed, 0])))
    folder = out / spec.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if export.keras_file is not None:  # shipped as a user's file: the local source exports it, as for any .hdf5
        model_path = folder / HDF5_FILE
        save_legacy_hdf5(export.keras_file, model_path)
    else:
        model_path = folder / "saved_model"
        save_serving(tf, export, model_path)
    inputs, targets = export.task(np.random.default_rng([seed, 1]), spec.samples)
    write_npz(folder / "data.npz", inputs)
    write_npz(folder / "targets.npz", targets)

    model = edgezoo.load(str(model_path))
    assert [s.name for s in model.inputs] == sorted(export.inputs), model.inputs
    assert {s.name for s in model.outputs} == set(spec.kinds), model.outputs
    outputs = run_reference(model, inputs)
    entries = [{"output": s.output, "target": s.target, "score": s.score, "baseline": round(baseline(s.score, targets[s.target]), 5)}
               for s in export.scores]
    evaluation = [{**entry, "value": round(entry["value"], 5)} for entry in evaluate(entries, outputs, targets)]
    meta = {
        "name": spec.name,
        "description": spec.description,
        "covers": spec.covers,
        "task": spec.task,
        "seed": seed,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in model.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "kind": spec.kinds[s.name]} for s in model.outputs],
        "parameters": int(sum(np.prod(v.shape) for v in export.variables)),
        **({"saved_model_bytes": folder_bytes(model_path)} if model_path.is_dir() else
           {"model_file": model_path.name, "model_bytes": model_path.stat().st_size}),
        "data": {"file": "data.npz", "targets": "targets.npz", "samples": spec.samples, "bytes": (folder / "data.npz").stat().st_size,
                 "drawn": "from the training distribution with another seed: none of these inputs was trained on"},
        "output_ranges": {name: {"min": round(float(v.min()), 5), "max": round(float(v.max()), 5), "std_over_samples": round(float(v.std(axis=0).mean()), 6)}
                          for name, v in sorted(outputs.items())},
        "training": export.training,
        "evaluation": evaluation,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# Random on every save, whatever the seed: fingerprint.pb's UUID, and the UUID tf-keras puts in an LSTM's
# `api_implements` attribute (the name TFLite's converter fuses the LSTM by).
RANDOM_LSTM_ID = re.compile(rb"lstm_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def tree_digest(folder: Path) -> str:
    """A short digest of a model's files without what TensorFlow randomises, to compare two builds."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "fingerprint.pb"):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + RANDOM_LSTM_ID.sub(b"lstm_", path.read_bytes()))
    return digest.hexdigest()[:16]


def _model_size(meta: dict) -> str:
    if "model_file" in meta:
        return f"{meta['model_file']}, {meta['model_bytes'] / 1024:.0f} KiB"
    return f"saved model, {meta['saved_model_bytes'] / 1024:.0f} KiB"


def models_table() -> str:
    """The table of docs/corpus.md's "The models" section, from every model.json."""
    rows = ["| model | what it is | covers | task | parameters | model | data | trained to (on data.npz) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for folder in sorted(p.parent for p in CORPUS_DIR.glob("*/model.json")):
        meta = json.loads((folder / "model.json").read_text())
        scores = "; ".join(f"{e['output']} {e['score']} {e['value']:.3f} (trivial {e['baseline']:.3f})" for e in meta["evaluation"])
        shapes = ", ".join(f"{o['name']} [" + ", ".join("N" if i == 0 else "?" if d is None else str(d) for i, d in enumerate(o["shape"])) + "]"
                           for o in meta["outputs"])
        rows.append(f"| {meta['name']} | {meta['description']} Outputs: {shapes}. | {meta['covers']} | {meta['task'] or '-'} | "
                    f"{meta['parameters']:,} | {_model_size(meta)} | {meta['data']['samples']} samples, "
                    f"{meta['data']['bytes'] / 1024:.0f} KiB | {scores}; {meta['training']['epochs']} epochs on "
                    f"{meta['training']['train_samples']:,} samples |")
    total = sum(p.stat().st_size for p in CORPUS_DIR.rglob("*") if p.is_file())
    return "\n".join(rows) + f"\n\nIn all: {total / 1e6:.2f} MB in tests/corpus/."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to build (default: all): {', '.join(corpus_models.MODELS)}")
    parser.add_argument("--out", type=Path, default=CORPUS_DIR, help="corpus folder (default: tests/corpus)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(corpus_models.MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(corpus_models.MODELS)}")
    names = args.names or list(corpus_models.MODELS)
    if len(names) > 1:
        # One process per model: TensorFlow numbers traced functions process-wide, so saved_model.pb would
        # otherwise depend on which models were built before it in the same run.
        for name in names:
            subprocess.run([sys.executable, __file__, name, "--out", str(args.out)], check=True)
    else:
        tf = _tf.tf()
        tf.config.experimental.enable_op_determinism()
        meta = build(corpus_models.MODELS[names[0]], args.out)
        scores = ", ".join(f"{e['output']} {e['score']} {e['value']:.3f} (trivial {e['baseline']:.3f})" for e in meta["evaluation"])
        print(f"{names[0]}: {meta['parameters']:,} parameters, {_model_size(meta)}, {meta['data']['bytes']:,} B data; "
              f"{scores}; digest {tree_digest(args.out / names[0])}", flush=True)
    if args.out.resolve() == CORPUS_DIR.resolve():
        CORPUS_DOC.write_text(rewrite_section(CORPUS_DOC.read_text(), "models", models_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
